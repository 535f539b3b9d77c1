{{/* The release's full name, at most 63 characters. */}}
{{- define "settings-sync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "settings-sync.operatorName" -}}
{{- printf "%s-operator" (include "settings-sync.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "settings-sync.selectorLabels" -}}
app.kubernetes.io/name: settings-sync-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "settings-sync.labels" -}}
{{ include "settings-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "settings-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "settings-sync.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, container half. */}}
{{- define "settings-sync.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "settings-sync.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The one namespace the operator reconciles, or "" for all of them
(operator.scope=cluster).
*/}}
{{- define "settings-sync.watchNamespace" -}}
{{- if eq .Values.operator.scope "namespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace -}}
{{- else if .Values.operator.watchNamespace -}}
{{- fail "operator.watchNamespace is used only with operator.scope=namespace" -}}
{{- end -}}
{{- end -}}
