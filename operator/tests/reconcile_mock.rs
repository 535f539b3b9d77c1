//! One reconciliation against a scripted API server (kube's client over a
//! tower-test mock): the paths that are awkward to reach on a real cluster
//! quickly, checked request by request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use settings_sync_operator::context::{Context, Timing};
use settings_sync_operator::crd::SettingsSync;
use settings_sync_operator::metrics::Metrics;
use settings_sync_operator::reconcile::reconcile;

/// A request as the fake API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
}

fn not_found() -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "message": "not found", "code": 404});
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(Body::from(serde_json::to_vec(&status).unwrap()))
        .unwrap()
}

/// A fake API server where only the database Secret may exist (with
/// `secret` as its data), and every write succeeds, answering with the
/// object written (as server-side apply does).
fn fake_api(secret: Option<Value>) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    fake_api_with(secret, vec![])
}

/// Like `fake_api`, with `existing` objects answered at their paths.
fn fake_api_with(
    secret: Option<Value>,
    existing: Vec<(&'static str, Value)>,
) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let path = parts.uri.path().to_string();
            log.lock().unwrap().push(Seen {
                method: parts.method.clone(),
                path: path.clone(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
            let reading = matches!(parts.method, Method::GET | Method::DELETE);
            let found = existing.iter().find(|(p, _)| *p == path).map(|(_, o)| o);
            let response = match &secret {
                _ if parts.method == Method::GET && found.is_some() => {
                    Response::new(Body::from(serde_json::to_vec(found.unwrap()).unwrap()))
                }
                Some(data) if reading && path.ends_with("/secrets/prefs-db") => {
                    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "prefs-db", "namespace": "apps"}, "data": data});
                    Response::new(Body::from(serde_json::to_vec(&secret).unwrap()))
                }
                _ if reading => not_found(),
                // A status write answers with the whole resource.
                _ if path.ends_with("/status") => {
                    let mut obj = serde_json::to_value(&*resource()).unwrap();
                    let written: Value = serde_json::from_slice(&bytes).unwrap();
                    obj["status"] = written["status"].clone();
                    Response::new(Body::from(serde_json::to_vec(&obj).unwrap()))
                }
                _ => Response::new(Body::from(bytes.to_vec())),
            };
            send.send_response(response);
        }
    });
    (Client::new(service, "default"), seen)
}

fn context(client: Client) -> Arc<Context> {
    let metrics = Metrics::register(&mut Registry::default());
    let reporter = Reporter {
        controller: "settings-sync-operator".into(),
        instance: None,
    };
    let timing = Timing {
        busy: Duration::from_secs(10),
        idle: Duration::from_secs(300),
    };
    Arc::new(Context::new(client, reporter, metrics, timing))
}

/// An explicitly insecure resource: no key-set Secret to script.
fn resource() -> Arc<SettingsSync> {
    resource_with_auth(json!({"insecureNoAuth": true}))
}

fn resource_with_auth(auth: Value) -> Arc<SettingsSync> {
    let mut obj = json!({
        "apiVersion": "settingssync.dev/v1alpha1", "kind": "SettingsSync",
        "metadata": {"name": "prefs", "namespace": "apps", "uid": "u-1", "generation": 2},
        "spec": {"image": "settings-sync:1", "database": {"urlSecretRef": {"name": "prefs-db", "key": "url"}}},
    });
    if !auth.is_null() {
        obj["spec"]["auth"] = auth;
    }
    Arc::new(serde_json::from_value(obj).unwrap())
}

/// Writes other than the resource's status and Events.
fn child_writes(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method != Method::GET)
        .filter(|s| !s.path.ends_with("/settingssyncs/prefs/status") && !s.path.contains("/events"))
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

fn condition(seen: &[Seen], type_: &str) -> Value {
    let status = seen
        .iter()
        .find(|s| s.path.ends_with("/settingssyncs/prefs/status"))
        .expect("the status was written");
    status.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap()
}

fn warnings(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method == Method::POST && s.path.contains("/events"))
        .filter(|s| s.body["type"] == "Warning")
        .map(|s| s.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

const DB: &str = "cG9zdGdyZXM6Ly94"; // "postgres://x", base64 as Secret data is

#[tokio::test]
async fn a_resource_without_auth_is_refused_and_nothing_but_its_status_is_written() {
    let (client, seen) = fake_api(Some(json!({"url": DB})));
    reconcile(resource_with_auth(Value::Null), context(client))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(child_writes(&seen), Vec::<String>::new());
    let degraded = condition(&seen, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "AuthenticationMissing");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("auth.insecureNoAuth: true")
    );
    assert_eq!(warnings(&seen), ["AuthenticationMissing"]);
}

#[tokio::test]
async fn an_explicitly_insecure_resource_runs_marked_insecure_with_a_warning() {
    let (client, seen) = fake_api(Some(json!({"url": DB})));
    reconcile(resource(), context(client)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(writes_to(&seen, "/jobs/prefs-migrate-") == 1, "{seen:#?}");
    let insecure = condition(&seen, "Insecure");
    assert_eq!(
        (&insecure["status"], &insecure["reason"]),
        (&json!("True"), &json!("InsecureNoAuth"))
    );
    assert_eq!(condition(&seen, "Degraded")["status"], "False");
    assert_eq!(warnings(&seen), ["InsecureNoAuth"]);
}

fn service(owner_uid: Option<&str>) -> Value {
    let mut svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "prefs", "namespace": "apps", "resourceVersion": "7"},
        "spec": {"ports": [{"port": 80}]}});
    if let Some(uid) = owner_uid {
        svc["metadata"]["ownerReferences"] = json!([{"apiVersion": "settingssync.dev/v1alpha1",
            "kind": "SettingsSync", "name": "prefs", "uid": uid, "controller": true}]);
    }
    svc
}

#[tokio::test]
async fn a_foreign_object_with_a_childs_name_is_reported_and_nothing_is_applied() {
    for foreign in [service(None), service(Some("someone-else"))] {
        let existing = vec![("/api/v1/namespaces/apps/services/prefs", foreign)];
        let (client, seen) = fake_api_with(Some(json!({"url": DB})), existing);
        reconcile(resource(), context(client)).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(child_writes(&seen), Vec::<String>::new());
        let degraded = condition(&seen, "Degraded");
        assert_eq!(degraded["reason"], "NameTaken");
        assert!(
            degraded["message"]
                .as_str()
                .unwrap()
                .starts_with("Service apps/prefs ")
        );
        assert_eq!(warnings(&seen), ["NameTaken"]);
    }
}

#[tokio::test]
async fn an_object_the_resource_controls_is_applied_as_usual() {
    let existing = vec![(
        "/api/v1/namespaces/apps/services/prefs",
        service(Some("u-1")),
    )];
    let (client, seen) = fake_api_with(Some(json!({"url": DB})), existing);
    reconcile(resource(), context(client)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(writes_to(&seen, "/services/prefs"), 1);
    assert_eq!(writes_to(&seen, "/networkpolicies/prefs"), 1);
    assert_eq!(condition(&seen, "Degraded")["status"], "False");
}

fn writes_to(seen: &[Seen], resource: &str) -> usize {
    seen.iter()
        .filter(|s| s.method != Method::GET && s.path.contains(resource))
        .count()
}

#[tokio::test]
async fn a_missing_database_secret_degrades_without_starting_a_migration() {
    let (client, seen) = fake_api(None);
    let action = reconcile(resource(), context(client)).await;
    assert!(action.is_ok(), "{action:?}");
    let seen = seen.lock().unwrap().clone();

    assert_eq!(
        writes_to(&seen, "/jobs"),
        0,
        "a migration started: {seen:#?}"
    );
    assert_eq!(
        writes_to(&seen, "/deployments"),
        0,
        "a Deployment was applied"
    );
    assert_eq!(
        writes_to(&seen, "/configmaps"),
        1,
        "the ConfigMap is applied regardless"
    );
    let status = seen
        .iter()
        .find(|s| s.path.ends_with("/settingssyncs/prefs/status"))
        .expect("the status was written");
    assert_eq!(status.method, Method::PATCH);
    let degraded = status.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "DatabaseSecretMissing");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("apps/prefs-db")
    );
    let event = seen
        .iter()
        .find(|s| s.method == Method::POST && s.path.contains("/events"))
        .expect("an Event was published");
    assert_eq!(event.body["reason"], "DatabaseSecretMissing");
    assert_eq!(event.body["type"], "Warning");
}

#[tokio::test]
async fn a_secret_without_the_key_is_reported_as_such() {
    let (client, seen) = fake_api(Some(json!({"uri": "cG9zdGdyZXM6Ly94"})));
    reconcile(resource(), context(client)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let status = seen
        .iter()
        .find(|s| s.path.ends_with("/settingssyncs/prefs/status"))
        .expect("the status was written");
    assert!(status.body.to_string().contains("DatabaseSecretKeyMissing"));
}

#[tokio::test]
async fn a_present_secret_starts_the_migration_and_the_deployment_waits_for_it() {
    // "postgres://x", base64-encoded as Secret data is.
    let (client, seen) = fake_api(Some(json!({"url": "cG9zdGdyZXM6Ly94"})));
    reconcile(resource(), context(client)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let job = seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.contains("/jobs/prefs-migrate-"))
        .expect("the migration Job was applied");
    let container = &job.body["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0], "migrate");
    assert_eq!(container["image"], "settings-sync:1");
    assert_eq!(
        writes_to(&seen, "/deployments"),
        0,
        "the Deployment did not wait"
    );
    let status = seen
        .iter()
        .find(|s| s.path.ends_with("/settingssyncs/prefs/status"))
        .expect("the status was written");
    assert!(status.body.to_string().contains("MigrationRunning"));
}
