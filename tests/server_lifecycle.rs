//! Health, reflection and graceful shutdown over a real socket.

use std::time::Duration;

use serde_json::json;
use settings_sync::server::Application;
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::server::serve_args;
use settings_sync_tests::{Backend, TestServer};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health(server: &TestServer, service: &str) -> i32 {
    let mut health =
        HealthClient::new(settings_sync_tests::server::channel(&server.endpoint()).await);
    let request = HealthCheckRequest {
        service: service.into(),
    };
    health.check(request).await.unwrap().into_inner().status
}

/// Polls until `check` holds or `limit` passes; tests never sleep blindly.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_for_liveness_and_readiness() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let server = TestServer::start(backend).await;
        assert_eq!(health(&server, "").await, ServingStatus::Serving as i32);
        let ready = eventually(Duration::from_secs(10), || async {
            health(&server, "settingssync.v1.SettingsSync").await == ServingStatus::Serving as i32
        })
        .await;
        assert!(ready, "{backend:?}: readiness follows the database");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_service() {
    use tonic_reflection_client::list_services;
    let server = TestServer::start(Backend::Sqlite).await;
    let services = list_services(&server.endpoint()).await;
    assert!(
        services.contains(&"settingssync.v1.SettingsSync".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_string()),
        "{services:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_keeps_acknowledged_writes() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("settings.db").display());
    let start = || async { Application::build(&serve_args(&url, &[])).await.unwrap() };
    let server = TestServer::serve(start().await, url.clone(), None);
    let mut client = server.client().await;
    let acknowledged = client
        .sync(&key("alice"), &write(1, "tab", json!({"n": 1})))
        .await
        .unwrap();
    server.stop().await.unwrap();
    assert!(
        client.get(&key("alice")).await.is_err(),
        "the port is closed after shutdown"
    );

    // A new server on the same database still has the acknowledged write.
    let again = TestServer::serve(start().await, url.clone(), None);
    let stored = again
        .client()
        .await
        .get(&key("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, acknowledged.document);
}

mod tonic_reflection_client {
    //! Just enough of the reflection protocol to list services.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    pub async fn list_services(endpoint: &str) -> Vec<String> {
        let mut client =
            ServerReflectionClient::new(settings_sync_tests::server::channel(endpoint).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = stream.message().await.unwrap().unwrap();
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected reflection response {other:?}"),
        }
    }
}

/// SIGTERM while requests are in flight: every request the server answered
/// is stored, and the server exits cleanly instead of dropping them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let url = settings_sync_tests::postgres::fresh_database().await;
    let mut replica = settings_sync_tests::replicas::Replica::start(&url, &[]).await;
    let client = settings_sync_client::Client::connect(replica.endpoint())
        .await
        .unwrap();
    let writers = (0..64u64).map(|i| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for round in 1..=200u64 {
                let doc = key(&format!("u{i}"));
                match client
                    .sync(&doc, &write(round, "tab", json!({"round": round})))
                    .await
                {
                    Ok(reply) => acknowledged.push(reply.document),
                    Err(_) => break,
                }
            }
            acknowledged
        })
    });
    let writers: Vec<_> = writers.collect();
    // Terminate once writes are flowing.
    let mut probe = client.clone();
    while probe.get(&key("u0")).await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        replica.terminate().await,
        "the server exits cleanly on SIGTERM"
    );
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(!acknowledged.is_empty());

    let again = settings_sync_tests::replicas::Replica::start(&url, &[]).await;
    let mut reader = settings_sync_client::Client::connect(again.endpoint())
        .await
        .unwrap();
    for document in &acknowledged {
        let stored = reader
            .get(&document.key)
            .await
            .unwrap()
            .expect("an acknowledged document is stored");
        assert!(
            stored.state.stamp >= document.state.stamp,
            "{}: acknowledged write lost",
            document.key
        );
    }
    println!(
        "{} writes acknowledged around SIGTERM, none lost",
        acknowledged.len()
    );
}
