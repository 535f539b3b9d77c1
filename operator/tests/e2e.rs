//! The operator against a real API server: the chart installed with helm,
//! two operator processes electing a leader, a SettingsSync reconciled into
//! its children, migrations gating the Deployment, status and Events,
//! a broken Secret, fail-over, and garbage collection on delete; and the
//! secure defaults: no server without authentication unless asked for,
//! NetworkPolicies, and no takeover of objects the operator does not own.
//!
//! Skipped (with a message) unless SETTINGS_SYNC_E2E_K8S is set; run it
//! with `scripts/operator-e2e.sh`.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use settings_sync_operator::crd::{SettingsSync, SettingsSyncSpec};
use support::{Cluster, eventually, free_port, http_get};

const OPS: &str = "ops";
const APPS: &str = "apps";
/// The chart names everything of release "rel" after this.
const OPERATOR: &str = "rel-settings-sync-operator";

fn spec(replicas: i32, image: &str) -> SettingsSyncSpec {
    spec_with_auth(
        replicas,
        image,
        json!({"jwksSecretRef": {"name": "prefs-jwks", "key": "jwks.json"}}),
    )
}

fn spec_with_auth(replicas: i32, image: &str, auth: serde_json::Value) -> SettingsSyncSpec {
    let mut spec = json!({
        "replicas": replicas,
        "image": image,
        "database": {"urlSecretRef": {"name": "prefs-db", "key": "url"}},
    });
    if !auth.is_null() {
        spec["auth"] = auth;
    }
    serde_json::from_value(spec).expect("a valid spec")
}

fn secret(name: &str, key: &str, value: &[u8]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.to_vec()),
        )])),
        ..Secret::default()
    }
}

fn db_secret() -> Secret {
    secret("prefs-db", "url", b"postgres://u:p@db:5432/settings")
}

async fn get<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("the API server answers")
}

fn condition(obj: &SettingsSync, type_: &str) -> Option<(String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Waits until the resource's `type_` condition has `status` and `reason`.
async fn wait_condition(
    api: &Api<SettingsSync>,
    type_: &str,
    status: &str,
    reason: &str,
) -> SettingsSync {
    wait_condition_of(api, "prefs", type_, status, reason).await
}

async fn wait_condition_of(
    api: &Api<SettingsSync>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> SettingsSync {
    let want = Some((status.to_string(), reason.to_string()));
    eventually(&format!("{name}: {type_}={status} ({reason})"), || async {
        get(api, name).await.filter(|o| condition(o, type_) == want)
    })
    .await
}

/// What the Job controller writes when a Job's pod succeeded.
async fn complete_job(jobs: &Api<Job>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "startTime": now, "completionTime": now, "succeeded": 1, "active": 0, "ready": 0, "terminating": 0,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
        ],
    }});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the Job's status is writable");
}

/// What the Deployment controller and kubelets write once pods are ready.
async fn mark_ready(deployments: &Api<Deployment>, replicas: i32) {
    let d = get(deployments, "prefs")
        .await
        .expect("the Deployment exists");
    let status = json!({"status": {
        "observedGeneration": d.metadata.generation, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": replicas, "availableReplicas": replicas,
    }});
    deployments
        .patch_status("prefs", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the Deployment's status is writable");
}

fn assert_owned_by(child: &ObjectMeta, owner: &SettingsSync) {
    let refs = child.owner_references.clone().unwrap_or_default();
    let controller = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .expect("a controller owner");
    assert_eq!(controller.kind, "SettingsSync");
    assert_eq!(Some(&controller.uid), owner.metadata.uid.as_ref());
}

async fn lease_holder(leases: &Api<Lease>) -> Option<String> {
    get(leases, OPERATOR).await?.spec?.holder_identity
}

async fn metric(port: u16, line: &str) -> Option<()> {
    let (code, body) = http_get(port, "/metrics").await?;
    (code == 200 && body.lines().any(|l| l == line)).then_some(())
}

async fn event_reasons(client: &Client) -> Vec<String> {
    events_of(client, "prefs")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

async fn events_of(client: &Client, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), APPS);
    let list = events
        .list(&ListParams::default())
        .await
        .expect("events list");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// The names of the objects of kind `K` in the apps namespace.
async fn names<K>(client: &Client) -> Vec<String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), APPS);
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("a list");
    list.items.into_iter().map(|o| o.name_any()).collect()
}

/// Every object named after `name` (as the operator names children), of
/// every kind the operator creates.
async fn children_of(client: &Client, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let kinds = [
        ("ServiceAccount", names::<ServiceAccount>(client).await),
        ("ConfigMap", names::<ConfigMap>(client).await),
        ("Service", names::<Service>(client).await),
        ("NetworkPolicy", names::<NetworkPolicy>(client).await),
        (
            "PodDisruptionBudget",
            names::<PodDisruptionBudget>(client).await,
        ),
        ("Job", names::<Job>(client).await),
        ("Deployment", names::<Deployment>(client).await),
    ];
    for (kind, names) in kinds {
        for n in names
            .into_iter()
            .filter(|n| n == name || n.starts_with(&format!("{name}-")))
        {
            found.push(format!("{kind} {n}"));
        }
    }
    found
}

/// The secure defaults, on resources of their own beside "prefs".
async fn secure_by_default(admin: &Client, start: std::time::Instant) {
    let resources: Api<SettingsSync> = Api::namespaced(admin.clone(), APPS);

    // Without `auth`: refused, with the fix in the message; nothing made.
    let open = SettingsSync::new(
        "no-auth",
        spec_with_auth(1, "img:1", serde_json::Value::Null),
    );
    resources
        .create(&PostParams::default(), &open)
        .await
        .expect("created");
    let obj = wait_condition_of(
        &resources,
        "no-auth",
        "Degraded",
        "True",
        "AuthenticationMissing",
    )
    .await;
    let degraded = obj
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert!(
        degraded.message.contains("insecureNoAuth"),
        "{}",
        degraded.message
    );
    assert_eq!(children_of(admin, "no-auth").await, Vec::<String>::new());
    eventually("an AuthenticationMissing Warning", || async {
        events_of(admin, "no-auth")
            .await
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("AuthenticationMissing")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    step(
        start,
        "a resource without auth is Degraded and nothing is created",
    );

    // The API server refuses a contradictory `auth` outright.
    let both = SettingsSync::new(
        "both",
        spec_with_auth(
            1,
            "img:1",
            json!({"insecureNoAuth": true, "jwksSecretRef": {"name": "j", "key": "k"}}),
        ),
    );
    let refused = resources.create(&PostParams::default(), &both).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("exactly one")),
        "a contradictory auth was accepted: {refused:?}"
    );

    // Asked for explicitly: it runs, marked Insecure, with a Warning Event.
    let insecure = SettingsSync::new(
        "open",
        spec_with_auth(1, "img:1", json!({"insecureNoAuth": true})),
    );
    resources
        .create(&PostParams::default(), &insecure)
        .await
        .expect("created");
    wait_condition_of(&resources, "open", "Insecure", "True", "InsecureNoAuth").await;
    let cm = eventually("open's ConfigMap", || async {
        get(
            &Api::<ConfigMap>::namespaced(admin.clone(), APPS),
            "open-config",
        )
        .await
    })
    .await;
    assert_eq!(cm.data.unwrap()["SETTINGS_SYNC_INSECURE_NO_AUTH"], "true");
    let jobs: Api<Job> = Api::namespaced(admin.clone(), APPS);
    let job = eventually("open's migration Job", || async {
        let list = jobs
            .list(&ListParams::default().labels("app.kubernetes.io/instance=open"))
            .await
            .ok()?;
        list.items.into_iter().next()
    })
    .await;
    complete_job(&jobs, &job.name_any()).await;
    eventually("open's Deployment", || async {
        get(&Api::<Deployment>::namespaced(admin.clone(), APPS), "open").await
    })
    .await;
    eventually("an InsecureNoAuth Warning", || async {
        events_of(admin, "open")
            .await
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("InsecureNoAuth")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    step(
        start,
        "an explicitly insecure resource runs, marked Insecure, with a Warning",
    );

    // A Service that happens to bear the name: left alone and reported.
    let services: Api<Service> = Api::namespaced(admin.clone(), APPS);
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "taken", "labels": {"team": "other"}},
        "spec": {"selector": {"app": "other"}, "ports": [{"name": "web", "port": 80}]},
    }))
    .expect("a Service");
    let foreign = services
        .create(&PostParams::default(), &foreign)
        .await
        .expect("created");
    let taken = SettingsSync::new("taken", spec(1, "img:1"));
    resources
        .create(&PostParams::default(), &taken)
        .await
        .expect("created");
    let obj = wait_condition_of(&resources, "taken", "Degraded", "True", "NameTaken").await;
    let degraded = obj
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert!(
        degraded.message.contains("Service apps/taken"),
        "{}",
        degraded.message
    );
    let after = get(&services, "taken")
        .await
        .expect("the Service is still there");
    assert_eq!(
        after.metadata.resource_version, foreign.metadata.resource_version,
        "the Service was written"
    );
    assert!(after.metadata.owner_references.is_none());
    assert_eq!(children_of(admin, "taken").await, ["Service taken"]);
    // Once the name is free, the resource gets its children.
    services
        .delete("taken", &DeleteParams::default())
        .await
        .expect("deleted");
    let svc = eventually("taken's own Service", || async {
        get(&services, "taken")
            .await
            .filter(|s| s.metadata.owner_references.is_some())
    })
    .await;
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 50051);
    step(
        start,
        "a foreign Service was left alone and reported; the resource recovered once it went",
    );

    for name in ["no-auth", "open", "taken"] {
        resources
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
    }
}

/// Prints how far the scenario got and when, so a slow or failing step
/// is easy to find in the output.
fn step(start: std::time::Instant, what: &str) {
    eprintln!("[{:>6.2}s] {what}", start.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_a_settings_sync_on_a_real_api_server() {
    let Some(tools) = support::tools() else {
        return;
    };
    let start = std::time::Instant::now();
    let user = format!("system:serviceaccount:{OPS}:{OPERATOR}");
    let mut cluster = Cluster::start(&tools, &user).await;
    let admin = cluster.admin().await;

    step(start, "starting the chart install");
    // The chart: CRD, RBAC, the operator's Deployment (which nothing runs:
    // there is no kubelet; the operator runs below as local processes).
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/settings-sync");
    let out = cluster.helm(&["install", "rel", chart, "-n", OPS, "--create-namespace"]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    cluster.start_garbage_collector();
    // The chart's NetworkPolicy: only the operator's HTTP port, from its namespace.
    let policy = get(
        &Api::<NetworkPolicy>::namespaced(admin.clone(), OPS),
        OPERATOR,
    )
    .await
    .expect("the operator's NetworkPolicy");
    let policy = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        policy["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "settings-sync-operator", "app.kubernetes.io/instance": "rel"})
    );
    assert_eq!(
        policy["ingress"],
        json!([{"ports": [{"port": 8080, "protocol": "TCP"}], "from": [{"podSelector": {}}]}])
    );

    step(start, "chart installed; starting two operators");
    // Two replicas, one Lease: the first one leads, the second stands by.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), OPS);
    let (port_a, port_b) = (free_port(), free_port());
    // op-a exports its reconcile spans to a receiver in this test.
    let (traces, otlp) = support::otlp::Receiver::start().await;
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))];
    let mut op_a = cluster.operator("op-a", port_a, OPS, OPERATOR, &otel);
    eventually("op-a to lead", || async {
        lease_holder(&leases).await.filter(|h| h == "op-a")
    })
    .await;
    let mut op_b = cluster.operator("op-b", port_b, OPS, OPERATOR, &[]);
    eventually("op-b to stand by, ready", || async {
        http_get(port_b, "/readyz").await.filter(|(c, _)| *c == 200)
    })
    .await;
    eventually("op-b's leader gauge at 0", || {
        metric(port_b, "settings_sync_operator_leader 0")
    })
    .await;
    eventually("op-a's leader gauge at 1", || {
        metric(port_a, "settings_sync_operator_leader 1")
    })
    .await;

    step(start, "op-a leads, op-b stands by");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(APPS.into()),
            ..Default::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), APPS);
    secrets
        .create(&PostParams::default(), &db_secret())
        .await
        .expect("secret");
    secrets
        .create(
            &PostParams::default(),
            &secret("prefs-jwks", "jwks.json", br#"{"keys":[]}"#),
        )
        .await
        .expect("secret");

    // The CRD's schema is enforced by the API server.
    let resources: Api<SettingsSync> = Api::namespaced(admin.clone(), APPS);
    eventually("the CRD to be served", || async {
        resources.list(&ListParams::default()).await.ok()
    })
    .await;
    let too_many = SettingsSync::new("too-many", spec(51, "img:1"));
    let refused = resources.create(&PostParams::default(), &too_many).await;
    assert!(
        matches!(refused, Err(kube::Error::Api(s)) if s.code == 422),
        "replicas 51 was accepted"
    );
    let long_name = SettingsSync::new(&"a".repeat(64), spec(1, "img:1"));
    let refused = resources.create(&PostParams::default(), &long_name).await;
    assert!(
        matches!(refused, Err(kube::Error::Api(s)) if s.code == 422),
        "a 64-character name was accepted"
    );

    let prefs = SettingsSync::new("prefs", spec(2, "settings-sync:1.0.0"));
    let created = resources
        .create(&PostParams::default(), &prefs)
        .await
        .expect("the resource is created");

    step(start, "SettingsSync created");
    // Children appear, owned by the resource; the Deployment waits for the
    // migration Job.
    let jobs: Api<Job> = Api::namespaced(admin.clone(), APPS);
    let job = eventually("the migration Job", || async {
        jobs.list(&ListParams::default().labels("app.kubernetes.io/component=migration"))
            .await
            .ok()?
            .items
            .pop()
    })
    .await;
    assert!(job.name_any().starts_with("prefs-migrate-"));
    assert_owned_by(job.meta(), &created);
    let sa = get(
        &Api::<ServiceAccount>::namespaced(admin.clone(), APPS),
        "prefs",
    )
    .await
    .expect("service account");
    let cm = get(
        &Api::<ConfigMap>::namespaced(admin.clone(), APPS),
        "prefs-config",
    )
    .await
    .expect("config map");
    let svc = get(&Api::<Service>::namespaced(admin.clone(), APPS), "prefs")
        .await
        .expect("service");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(admin.clone(), APPS);
    let pdb = eventually("the PodDisruptionBudget", || async {
        get(&pdbs, "prefs").await
    })
    .await;
    let policy = get(
        &Api::<NetworkPolicy>::namespaced(admin.clone(), APPS),
        "prefs",
    )
    .await
    .expect("network policy");
    for child in [sa.meta(), cm.meta(), svc.meta(), pdb.meta(), policy.meta()] {
        assert_owned_by(child, &created);
    }
    // Ingress to prefs' pods: the gRPC port, from its own namespace only.
    let policy = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        policy["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "settings-sync", "app.kubernetes.io/instance": "prefs"})
    );
    assert_eq!(policy["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["ingress"],
        json!([{"ports": [{"port": 50051, "protocol": "TCP"}], "from": [{"podSelector": {}}]}])
    );
    let cm_data = cm.data.clone().unwrap();
    assert_eq!(
        cm_data["SETTINGS_SYNC_JWKS_FILE"],
        "/etc/settings-sync/auth/jwks.json"
    );
    assert!(!cm_data.contains_key("SETTINGS_SYNC_INSECURE_NO_AUTH"));
    let obj = wait_condition(&resources, "Progressing", "True", "MigrationRunning").await;
    assert_eq!(
        condition(&obj, "Available"),
        Some(("False".into(), "DeploymentNotCreated".into()))
    );
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), APPS);
    assert!(
        get(&deployments, "prefs").await.is_none(),
        "the Deployment started before its migrations"
    );

    step(start, "children applied; Deployment gated on the migration");
    // The migration succeeds: the Deployment appears; its pods get ready.
    complete_job(&jobs, &job.name_any()).await;
    let deployment = eventually("the Deployment", || async {
        get(&deployments, "prefs").await
    })
    .await;
    assert_owned_by(deployment.meta(), &created);
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("settings-sync:1.0.0")
    );
    mark_ready(&deployments, 2).await;
    let obj = wait_condition(&resources, "Available", "True", "ReplicasReady").await;
    let status = obj.status.clone().unwrap();
    assert_eq!(status.ready_replicas, 2);
    assert_eq!(status.endpoint.as_deref(), Some("prefs.apps.svc:50051"));
    assert_eq!(status.observed_generation, obj.metadata.generation);
    wait_condition(&resources, "Progressing", "False", "RolloutComplete").await;
    wait_condition(&resources, "Degraded", "False", "AsExpected").await;
    for reason in ["MigrationStarted", "MigrationSucceeded", "Available"] {
        eventually(&format!("a {reason} Event"), || async {
            event_reasons(&admin)
                .await
                .contains(&reason.to_string())
                .then_some(())
        })
        .await;
    }
    eventually("op-a to count reconciliations", || async {
        let (_, body) = http_get(port_a, "/metrics").await?;
        body.contains("settings_sync_operator_reconcile_duration_seconds_count")
            .then_some(())
    })
    .await;

    step(start, "Available; events and metrics seen");
    secure_by_default(&admin, start).await;
    // Fail-over: the leader stops; the standby takes the Lease and acts.
    let code = op_a.terminate().await;
    assert!(code.success(), "op-a exited with {code}");
    // Its spans were flushed on the way out.
    let spans = traces.spans();
    let reconciles: Vec<_> = spans.iter().filter(|s| s.name == "reconcile").collect();
    assert!(
        reconciles.iter().any(
            |s| s.attributes.get("name").map(String::as_str) == Some("prefs")
                && s.attributes.get("outcome").map(String::as_str) == Some("ok")
        ),
        "no reconcile span of prefs among {spans:?}"
    );
    eventually("op-b to lead", || async {
        lease_holder(&leases).await.filter(|h| h == "op-b")
    })
    .await;

    step(start, "op-b took over");
    // A broken Secret is reported with an actionable reason, and recovers.
    secrets
        .delete("prefs-db", &DeleteParams::default())
        .await
        .expect("secret deleted");
    wait_condition(&resources, "Degraded", "True", "DatabaseSecretMissing").await;
    secrets
        .create(&PostParams::default(), &db_secret())
        .await
        .expect("secret recreated");
    wait_condition(&resources, "Degraded", "False", "AsExpected").await;

    step(start, "Degraded on a missing Secret, and recovered");
    // A new image: a new migration Job; the Deployment keeps the old image
    // until it succeeds, and the old Job is cleaned up after.
    let patch = json!({"spec": {"image": "settings-sync:1.1.0", "replicas": 1}});
    resources
        .patch("prefs", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("spec updated");
    let new_job = eventually("the new migration Job", || async {
        let list = jobs.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|j| j.name_any() != job.name_any())
    })
    .await;
    wait_condition(&resources, "Progressing", "True", "MigrationRunning").await;
    let image = |d: Deployment| d.spec?.template.spec?.containers[0].image.clone();
    assert_eq!(
        image(get(&deployments, "prefs").await.unwrap()).as_deref(),
        Some("settings-sync:1.0.0")
    );
    complete_job(&jobs, &new_job.name_any()).await;
    eventually("the Deployment to run the new image", || async {
        image(get(&deployments, "prefs").await?).filter(|i| i == "settings-sync:1.1.0")
    })
    .await;
    eventually("the old Job to go", || async {
        get(&jobs, &job.name_any()).await.is_none().then_some(())
    })
    .await;
    // One replica needs no disruption budget.
    eventually("the PodDisruptionBudget to go", || async {
        get(&pdbs, "prefs").await.is_none().then_some(())
    })
    .await;

    step(
        start,
        "new image rolled out after its migration; PDB removed at 1 replica",
    );
    // Deleting the resource deletes its children (the garbage collector,
    // following the owner references).
    resources
        .delete("prefs", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the children to be garbage-collected", || async {
        let gone = get(&deployments, "prefs").await.is_none()
            && get(&Api::<Service>::namespaced(admin.clone(), APPS), "prefs")
                .await
                .is_none()
            && get(
                &Api::<ConfigMap>::namespaced(admin.clone(), APPS),
                "prefs-config",
            )
            .await
            .is_none()
            && get(
                &Api::<ServiceAccount>::namespaced(admin.clone(), APPS),
                "prefs",
            )
            .await
            .is_none()
            && jobs
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty();
        gone.then_some(())
    })
    .await;
    step(start, "children garbage-collected");

    // Another holder writes the Lease (as a replica that had lost contact
    // and came back would): op-b must stop acting, i.e. exit, not carry on.
    let mut lease = get(&leases, OPERATOR).await.expect("the Lease");
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("intruder".into());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ));
    }
    leases
        .replace(OPERATOR, &PostParams::default(), &lease)
        .await
        .expect("Lease written");
    let code = op_b.exited().await;
    assert!(
        !code.success(),
        "op-b kept running (or exited cleanly) after losing the Lease"
    );
    step(start, "op-b exited on losing the Lease");
}
