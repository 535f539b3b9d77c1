//! The Helm chart, checked with the real `helm` binary: lint, schema
//! validation of values, and properties of the rendered manifests.
//!
//! Needs `SETTINGS_SYNC_HELM` (the path of helm); `scripts/operator-tools.sh
//! helm` builds and prints it. Without it every test here is skipped with a
//! message.

use std::path::PathBuf;
use std::process::Command;

use serde_yaml::Value;

fn helm() -> Option<PathBuf> {
    let helm = std::env::var_os("SETTINGS_SYNC_HELM").map(PathBuf::from);
    if helm.is_none() {
        eprintln!(
            "SKIPPED: set SETTINGS_SYNC_HELM to a helm binary (scripts/operator-tools.sh helm) to test the chart"
        );
    }
    helm
}

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/settings-sync")
}

fn run(helm: &PathBuf, args: &[&str]) -> (bool, String) {
    let out = Command::new(helm).args(args).output().expect("helm runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Renders the chart with `sets` and returns the documents.
fn render(helm: &PathBuf, sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "rel",
        chart.to_str().unwrap(),
        "-n",
        "ops",
        "--include-crds",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, text) = run(helm, &args);
    assert!(ok, "helm template failed:\n{text}");
    text.split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|doc| doc.get("kind").is_some())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

#[test]
fn the_chart_passes_strict_lint_with_default_and_full_values() {
    let Some(helm) = helm() else { return };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for sets in [
        vec![],
        vec![
            "--set",
            "instance.enabled=true",
            "--set",
            "operator.scope=namespace",
            "--set",
            "operator.watchNamespace=apps",
        ],
    ] {
        let mut args = vec!["lint", chart, "--strict"];
        args.extend(sets);
        let (ok, text) = run(&helm, &args);
        assert!(ok, "helm lint failed:\n{text}");
        assert!(
            text.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{text}"
        );
    }
}

#[test]
fn the_values_schema_rejects_out_of_range_and_unknown_values() {
    let Some(helm) = helm() else { return };
    let chart = chart();
    for set in [
        "operator.replicas=0",
        "operator.httpPort=80",
        "operator.bogus=1",
    ] {
        let (ok, text) = run(
            &helm,
            &["template", "rel", chart.to_str().unwrap(), "--set", set],
        );
        assert!(!ok, "{set} was accepted");
        assert!(
            text.contains("values don't meet the specifications of the schema"),
            "{text}"
        );
    }
}

#[test]
fn the_operator_pod_runs_restricted_with_probes() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &[]);
    let deployment = find(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
}

#[test]
fn rbac_grants_no_wildcards_and_only_get_on_secrets() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &[]);
    let roles: Vec<&Value> = find(&docs, "ClusterRole")
        .into_iter()
        .chain(find(&docs, "Role"))
        .collect();
    assert_eq!(roles.len(), 2);
    for role in &roles {
        for rule in role["rules"].as_sequence().unwrap() {
            for field in ["verbs", "resources", "apiGroups"] {
                let values = rule[field].as_sequence().unwrap();
                assert!(
                    !values.iter().any(|v| v.as_str() == Some("*")),
                    "wildcard in {rule:?}"
                );
            }
            let resources = rule["resources"].as_sequence().unwrap();
            if resources.iter().any(|r| r.as_str() == Some("secrets")) {
                assert_eq!(
                    rule["verbs"].as_sequence().unwrap(),
                    &vec![Value::from("get")]
                );
            }
        }
    }
    let leases = find(&docs, "Role")[0];
    assert_eq!(leases["metadata"]["namespace"].as_str(), Some("ops"));
    assert!(
        serde_yaml::to_string(leases)
            .unwrap()
            .contains("coordination.k8s.io")
    );
}

/// Renders with `sets` expecting failure; returns helm's output.
fn refused(helm: &PathBuf, sets: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, text) = run(helm, &args);
    assert!(!ok, "{sets:?} was accepted");
    text
}

#[test]
fn the_namespace_scope_installs_nothing_cluster_wide_and_watches_the_release_namespace() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &["operator.scope=namespace"]);
    assert!(find(&docs, "ClusterRole").is_empty());
    assert!(find(&docs, "ClusterRoleBinding").is_empty());
    for role in find(&docs, "Role")
        .into_iter()
        .chain(find(&docs, "RoleBinding"))
    {
        assert_eq!(role["metadata"]["namespace"].as_str(), Some("ops"));
    }
    let deployment = find(&docs, "Deployment")[0];
    let env =
        serde_yaml::to_string(&deployment["spec"]["template"]["spec"]["containers"][0]["env"])
            .unwrap();
    assert!(
        env.contains("name: SETTINGS_SYNC_OPERATOR_WATCH_NAMESPACE\n  value: ops"),
        "{env}"
    );
}

#[test]
fn a_watched_namespace_needs_the_namespace_scope() {
    let Some(helm) = helm() else { return };
    let text = refused(&helm, &["operator.watchNamespace=apps"]);
    assert!(text.contains("operator.scope=namespace"), "{text}");
    let text = refused(&helm, &["operator.scope=everywhere"]);
    assert!(
        text.contains("values don't meet the specifications of the schema"),
        "{text}"
    );
}

#[test]
fn the_operator_pods_admit_only_their_http_port_from_their_namespace() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &[]);
    let policy = find(&docs, "NetworkPolicy")[0];
    let spec = serde_json::to_value(&policy["spec"]).unwrap();
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        serde_json::json!({"app.kubernetes.io/name": "settings-sync-operator", "app.kubernetes.io/instance": "rel"})
    );
    assert_eq!(spec["policyTypes"], serde_json::json!(["Ingress"]));
    assert_eq!(
        spec["ingress"],
        serde_json::json!([{"ports": [{"port": 8080, "protocol": "TCP"}], "from": [{"podSelector": {}}]}])
    );
    let docs = render(
        &helm,
        &["operator.networkPolicy.from[0].namespaceSelector.matchLabels.team=monitoring"],
    );
    let spec = serde_json::to_value(&find(&docs, "NetworkPolicy")[0]["spec"]).unwrap();
    assert_eq!(
        spec["ingress"][0]["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}])
    );
    let docs = render(&helm, &["operator.networkPolicy.enabled=false"]);
    assert!(find(&docs, "NetworkPolicy").is_empty());
}

#[test]
fn rbac_lets_the_operator_apply_network_policies() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &[]);
    let role = find(&docs, "ClusterRole")[0];
    let rules = serde_json::to_value(&role["rules"]).unwrap();
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"] == serde_json::json!(["networkpolicies"]))
        .expect("a rule for networkpolicies");
    assert_eq!(rule["apiGroups"], serde_json::json!(["networking.k8s.io"]));
    assert_eq!(
        rule["verbs"],
        serde_json::json!(["get", "list", "watch", "create", "patch"])
    );
}

#[test]
fn an_instance_needs_authentication_settings() {
    let Some(helm) = helm() else { return };
    for sets in [
        vec!["instance.enabled=true", "instance.spec.auth=null"],
        vec![
            "instance.enabled=true",
            "instance.spec.auth.insecureNoAuth=true",
        ],
    ] {
        let text = refused(&helm, &sets);
        assert!(
            text.contains("values don't meet the specifications of the schema"),
            "{sets:?}: {text}"
        );
    }
    let docs = render(
        &helm,
        &[
            "instance.enabled=true",
            "instance.spec.auth.jwksSecretRef=null",
            "instance.spec.auth.insecureNoAuth=true",
        ],
    );
    let instance = find(&docs, "SettingsSync")[0];
    assert_eq!(
        instance["spec"]["auth"]["insecureNoAuth"].as_bool(),
        Some(true)
    );
    let docs = render(&helm, &["instance.enabled=true"]);
    let instance = find(&docs, "SettingsSync")[0];
    assert_eq!(
        instance["spec"]["auth"]["jwksSecretRef"]["name"].as_str(),
        Some("settings-sync-jwks")
    );
}

#[test]
fn a_watched_namespace_turns_the_cluster_role_into_a_role_there() {
    let Some(helm) = helm() else { return };
    let docs = render(
        &helm,
        &["operator.scope=namespace", "operator.watchNamespace=apps"],
    );
    assert!(find(&docs, "ClusterRole").is_empty());
    let namespaces: Vec<_> = find(&docs, "Role")
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert!(namespaces.contains(&"apps".to_string()) && namespaces.contains(&"ops".to_string()));
}

#[test]
fn the_crd_ships_and_an_instance_renders_only_when_enabled() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &[]);
    assert_eq!(find(&docs, "CustomResourceDefinition").len(), 1);
    assert!(find(&docs, "SettingsSync").is_empty());
    let docs = render(
        &helm,
        &["instance.enabled=true", "instance.spec.replicas=3"],
    );
    let instance = find(&docs, "SettingsSync")[0];
    assert_eq!(instance["spec"]["replicas"].as_i64(), Some(3));
    assert_eq!(
        instance["spec"]["database"]["urlSecretRef"]["key"].as_str(),
        Some("url")
    );
}

#[test]
fn helm_test_checks_the_operator_and_with_an_instance_its_grpc_health() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &["instance.enabled=true"]);
    let pod = find(&docs, "Pod")[0];
    assert_eq!(
        pod["metadata"]["annotations"]["helm.sh/hook"].as_str(),
        Some("test")
    );
    let containers = pod["spec"]["containers"].as_sequence().unwrap();
    // Each component checks itself from its own image: nothing else to pull.
    let operator = &containers[0];
    assert_eq!(
        operator["image"].as_str(),
        Some("settings-sync-operator:0.1.0")
    );
    assert_eq!(
        serde_yaml::to_string(&operator["args"]).unwrap(),
        "- probe\n- http://$(REL_SETTINGS_SYNC_OPERATOR_SERVICE_HOST):$(REL_SETTINGS_SYNC_OPERATOR_SERVICE_PORT)/readyz\n"
    );
    let server = &containers[1];
    assert_eq!(server["image"].as_str(), Some("settings-sync:0.1.0"));
    assert_eq!(
        serde_yaml::to_string(&server["args"]).unwrap(),
        "- health\n- --server\n- http://$(SETTINGS_SYNC_SERVICE_HOST):$(SETTINGS_SYNC_SERVICE_PORT)\n"
    );
}
