//! Faults under load: each test asserts that nothing acknowledged was lost,
//! that every answer was linearizable, and that the system recovered by
//! itself.

use std::collections::HashMap;
use std::time::Duration;

use settings_sync_client::Client;
use settings_sync_protocol::{DocumentKey, Versioned};
use settings_sync_tests::cluster::OwnCluster;
use settings_sync_tests::linearizable::{self, Report};
use settings_sync_tests::load::{self, LoadConfig, Op, key_of};
use settings_sync_tests::proxy::FaultyProxy;
use settings_sync_tests::replicas::Replica;
use settings_sync_tests::{postgres, server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const DOCUMENTS: usize = 4;
const PATIENCE: Duration = Duration::from_secs(30);

fn config(seed: u64, duplicate_and_reorder: bool) -> LoadConfig {
    LoadConfig {
        clients: 16,
        ops_per_client: 40,
        documents: DOCUMENTS,
        clock_spread: 30,
        duplicate_and_reorder,
        seed,
    }
}

async fn final_states(endpoint: &str) -> HashMap<DocumentKey, Option<Versioned>> {
    let mut client = Client::connect(endpoint.to_string()).await.unwrap();
    let mut finals = HashMap::new();
    for i in 0..DOCUMENTS {
        finals.insert(
            key_of(i),
            client.get(&key_of(i)).await.unwrap().map(|d| d.state),
        );
    }
    finals
}

async fn verify(name: &str, history: &[Op], endpoint: &str) -> Report {
    let finals = final_states(endpoint).await;
    let report = linearizable::check(history, &finals)
        .unwrap_or_else(|v| panic!("{name}: {} violations:\n{}", v.len(), v.join("\n")));
    println!(
        "{name}: {} operations, {} unanswered, {} acknowledged writes, writes lost = {}",
        report.operations, report.unanswered, report.acknowledged_writes, report.lost_writes
    );
    assert_eq!(report.lost_writes, 0);
    report
}

async fn health(endpoint: &str, service: &str) -> Option<i32> {
    let channel = server::channel(endpoint).await;
    let request = HealthCheckRequest {
        service: service.into(),
    };
    HealthClient::new(channel)
        .check(request)
        .await
        .ok()
        .map(|r| r.into_inner().status)
}

async fn eventually_health(endpoint: &str, service: &str, wanted: ServingStatus) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while health(endpoint, service).await != Some(wanted as i32) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{endpoint} never reported {wanted:?} for {service:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the load in the background and returns once its first write is
/// stored, so a fault lands mid-load.
async fn start_load(endpoints: &[String], config: LoadConfig) -> tokio::task::JoinHandle<Vec<Op>> {
    let load = {
        let endpoints = endpoints.to_vec();
        tokio::spawn(async move { load::run(&endpoints, &config).await })
    };
    let mut probe = Client::connect(endpoints[0].clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !probe.get(&key_of(0)).await.is_ok_and(|d| d.is_some()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    load
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_load_loses_nothing() {
    let url = postgres::fresh_database().await;
    let mut replicas = futures::future::join_all((0..3).map(|_| Replica::start(&url, &[]))).await;
    let endpoints: Vec<String> = replicas.iter().map(Replica::endpoint).collect();
    let load = start_load(&endpoints, config(11, false)).await;
    replicas[0].kill_9().await;
    let history = load.await.unwrap();
    let report = verify("kill -9 of a replica", &history, &endpoints[1]).await;
    assert!(report.acknowledged_writes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_load_loses_nothing_and_replicas_recover() {
    let cluster = OwnCluster::start();
    let replicas = futures::future::join_all(
        (0..2).map(|_| Replica::start(&cluster.url, &["--health-interval-ms", "50"])),
    )
    .await;
    let endpoints: Vec<String> = replicas.iter().map(Replica::endpoint).collect();
    for endpoint in &endpoints {
        eventually_health(
            endpoint,
            "settingssync.v1.SettingsSync",
            ServingStatus::Serving,
        )
        .await;
    }
    let load = start_load(&endpoints, config(12, false)).await;

    cluster.stop_server();
    for endpoint in &endpoints {
        eventually_health(
            endpoint,
            "settingssync.v1.SettingsSync",
            ServingStatus::NotServing,
        )
        .await;
        // Liveness does not follow the database: nobody restarts the replica.
        assert_eq!(
            health(endpoint, "").await,
            Some(ServingStatus::Serving as i32)
        );
    }
    cluster.start_server();
    for endpoint in &endpoints {
        eventually_health(
            endpoint,
            "settingssync.v1.SettingsSync",
            ServingStatus::Serving,
        )
        .await;
    }
    let history = load.await.unwrap();
    verify("PostgreSQL restart", &history, &endpoints[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_database_connections_mid_load_loses_nothing() {
    let url = postgres::fresh_database().await;
    let upstream = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let mut proxy = FaultyProxy::start(upstream).await;
    let proxied = url.replace(&upstream.to_string(), &proxy.addr.to_string());
    let replicas = futures::future::join_all((0..2).map(|_| Replica::start(&proxied, &[]))).await;
    let endpoints: Vec<String> = replicas.iter().map(Replica::endpoint).collect();
    let load = start_load(&endpoints, config(13, false)).await;
    while !load.is_finished() && proxy.cuts() < 20 {
        proxy.cut_all();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let history = load.await.unwrap();
    println!("cut every database connection {} times", proxy.cuts());
    assert!(proxy.cuts() > 0);
    verify("connection cuts", &history, &endpoints[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_requests_change_nothing_twice() {
    let url = postgres::fresh_database().await;
    let replicas = futures::future::join_all((0..2).map(|_| Replica::start(&url, &[]))).await;
    let endpoints: Vec<String> = replicas.iter().map(Replica::endpoint).collect();
    let history = load::run(&endpoints, &config(14, true)).await;
    verify("duplicates and replays", &history, &endpoints[0]).await;
}
