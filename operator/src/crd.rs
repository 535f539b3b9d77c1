//! The `SettingsSync` custom resource: what a person asks for (spec) and
//! what the operator reports back (status).
//!
//! The CRD YAML in the Helm chart is generated from these types
//! (`settings-sync-operator crd`); a test fails when the two drift, so the
//! schema bounds below are the ones the API server enforces.
//!
//! Secrets never appear by value: the database URL, TLS key pair and JWKS
//! are references to Secrets in the resource's namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of the resource.
pub const GROUP: &str = "settingssync.dev";

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "settingssync.dev",
    version = "v1alpha1",
    kind = "SettingsSync",
    plural = "settingssyncs",
    shortname = "ssync",
    namespaced,
    status = "SettingsSyncStatus",
    // The name becomes a Service name (a DNS-1035 label) and a label value.
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')")
        .message("the name must be a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter"),
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Degraded","type":"string","jsonPath":".status.conditions[?(@.type==\"Degraded\")].reason"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
/// A settings-sync server: replicas over one database, with its Service,
/// migrations, telemetry and security settings.
pub struct SettingsSyncSpec {
    /// Number of server replicas. All replicas share the one database, so a
    /// PostgreSQL URL is needed for more than one.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 50))]
    pub replicas: i32,
    /// Container image of the server, e.g. `ghcr.io/example/settings-sync:1.2.3`.
    /// Migrations run once per image (see status `migratedImage`).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets holding credentials for the image registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub database: DatabaseSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Serve gRPC over TLS with the key pair of a `kubernetes.io/tls` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// How callers authenticate. Required in effect: without it the
    /// resource is refused (`Degraded: AuthenticationMissing`) and nothing
    /// is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Who may connect to the gRPC port (a NetworkPolicy the operator
    /// creates); by default the pods of the resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// Browser origins allowed to call over gRPC-Web.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// Requests and limits of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Replaces the default spread (at most one replica of skew across
    /// nodes, preferred, not required) when set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// `RUST_LOG`-style filter for the server's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub log_filter: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// A key of a Secret in the resource's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The Secret key whose value is the database URL (`postgres://…`).
    pub url_secret_ref: SecretKeyRef,
    /// Connections in each replica's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 200))]
    pub pool_size: Option<u32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// OTLP/gRPC collector, e.g. `http://otel-collector.observability:4317`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub otlp_endpoint: Option<String>,
    /// Fraction of new traces to sample (parent-based), 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: Option<f64>,
    /// `service.name` of exported telemetry; the resource's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_name: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Largest accepted document in bytes of JSON (server default 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777216))]
    pub max_document_bytes: Option<u64>,
    /// How far one write may move a document's clock forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_clock_jump: Option<u64>,
    /// Requests per second each caller identity may make on average, per
    /// replica; 0 turns the limit off. Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub rate_limit_per_second: Option<f64>,
    /// Requests an identity may make in a burst above the average (server default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub rate_limit_burst: Option<u32>,
    /// Watch streams one identity may hold open at once; 0: no cap (server default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000000))]
    pub max_watch_streams_per_identity: Option<u32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret (keys `tls.crt` and `tls.key`).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Mutual TLS: the Secret key holding the PEM CA certificates that
    /// client certificates must chain to. A service token then counts only
    /// on a connection with a verified client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_secret_ref: Option<SecretKeyRef>,
}

/// Either `jwksSecretRef` (callers present tokens it verifies) or
/// `insecureNoAuth: true`, never both; the API server enforces this too.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.jwksSecretRef) != self.insecureNoAuth")
        .message("set either jwksSecretRef or insecureNoAuth: true (exactly one)"),
    validation = Rule::new("!self.insecureNoAuth || (!has(self.issuer) && !has(self.audience))")
        .message("issuer and audience check tokens; they cannot be set with insecureNoAuth")
)]
pub struct AuthSpec {
    /// The Secret key holding the JSON Web Key Set that signs callers' tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_secret_ref: Option<SecretKeyRef>,
    /// Accept only tokens with this `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: Option<String>,
    /// Accept only tokens whose `aud` names this audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub audience: Option<String>,
    /// Serve without authentication: anyone who can reach the port may
    /// read and write every tenant's settings. The resource then carries
    /// the condition `Insecure` and a Warning Event.
    #[serde(default)]
    pub insecure_no_auth: bool,
}

/// Ingress to the server pods: only the gRPC port, only from these peers.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Pods, namespaces or address blocks that may connect. Empty (the
    /// default): the pods of the resource's namespace. Every namespace:
    /// `- namespaceSelector: {}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub from: Vec<NetworkPolicyPeer>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Origins (`scheme://host[:port]`, lowercase, no path) whose pages may
    /// call; none by default. `*` is not accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r"^https?://[-a-z0-9.:\[\]]+$"))
    )]
    pub allowed_origins: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsSyncStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// In-cluster gRPC address of the service, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The image whose database migrations have completed; the Deployment
    /// runs this image until the migrations of a newer one succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_image: Option<String>,
    /// `Available`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The CRD as YAML, exactly as checked in under `charts/settings-sync/crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(&SettingsSync::crd())?;
    Ok(format!(
        "# Generated by `settings-sync-operator crd` from operator/src/crd.rs; do not edit.\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> serde_json::Value {
        let crd = serde_json::to_value(SettingsSync::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn the_replica_count_is_bounded_between_one_and_fifty() {
        let replicas = &schema()["properties"]["spec"]["properties"]["replicas"];
        assert_eq!(replicas["minimum"].as_f64(), Some(1.0));
        assert_eq!(replicas["maximum"].as_f64(), Some(50.0));
    }

    #[test]
    fn the_sampling_ratio_is_bounded_between_zero_and_one() {
        let spec = &schema()["properties"]["spec"]["properties"];
        let ratio = &spec["telemetry"]["properties"]["samplingRatio"];
        assert_eq!(ratio["minimum"].as_f64(), Some(0.0));
        assert_eq!(ratio["maximum"].as_f64(), Some(1.0));
    }

    #[test]
    fn the_crd_is_namespaced_with_a_status_subresource() {
        let crd = serde_json::to_value(SettingsSync::crd()).unwrap();
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["metadata"]["name"], "settingssyncs.settingssync.dev");
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
    }

    #[test]
    fn the_name_must_be_a_dns_label_for_the_service() {
        let rules = &schema()["x-kubernetes-validations"];
        assert!(
            rules[0]["rule"]
                .as_str()
                .unwrap()
                .contains("self.metadata.name")
        );
    }

    #[test]
    fn a_minimal_resource_parses_with_defaults() {
        let spec: SettingsSyncSpec = serde_json::from_value(json!({
            "image": "settings-sync:1",
            "database": {"urlSecretRef": {"name": "db", "key": "url"}}
        }))
        .unwrap();
        assert_eq!(spec.replicas, 1);
        assert_eq!(spec.limits, LimitsSpec::default());
        assert!(spec.tls.is_none() && spec.auth.is_none());
    }
}
