//! Three replica processes over one PostgreSQL under heavy contention: every
//! history is linearizable per document, nothing acknowledged is lost, and
//! watchers on every replica see the same sequence of states.

use std::collections::HashMap;
use std::time::Duration;

use settings_sync_client::Client;
use settings_sync_protocol::{Document, DocumentKey, Versioned};
use settings_sync_tests::linearizable::{self, Report};
use settings_sync_tests::load::{self, LoadConfig, Op, key_of};
use settings_sync_tests::postgres;
use settings_sync_tests::replicas::Replica;
use settings_sync_tests::watchers::Recorder;

const DOCUMENTS: usize = 4;

pub async fn final_states(endpoint: &str) -> HashMap<DocumentKey, Option<Versioned>> {
    let mut client = Client::connect(endpoint.to_string()).await.unwrap();
    let mut finals = HashMap::new();
    for i in 0..DOCUMENTS {
        let state = client.get(&key_of(i)).await.unwrap().map(|d| d.state);
        finals.insert(key_of(i), state);
    }
    finals
}

fn summary(name: &str, report: &Report, history: &[Op]) {
    println!(
        "{name}: {} operations ({} unanswered), {} acknowledged writes, {} documents checked, writes lost = {}",
        report.operations,
        report.unanswered,
        report.acknowledged_writes,
        report.documents,
        report.lost_writes,
    );
    assert!(history.len() >= report.acknowledged_writes);
}

/// Per document, the states a watcher saw, in order.
fn states_by_document(seen: &[Document]) -> HashMap<DocumentKey, Vec<Versioned>> {
    let mut states: HashMap<DocumentKey, Vec<Versioned>> = HashMap::new();
    for document in seen {
        states
            .entry(document.key.clone())
            .or_default()
            .push(document.state.clone());
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_under_contention_stay_linearizable_and_agree() {
    let url = postgres::fresh_database().await;
    let replicas = futures::future::join_all((0..3).map(|_| Replica::start(&url, &[]))).await;
    let endpoints: Vec<String> = replicas.iter().map(Replica::endpoint).collect();
    let recorders = futures::future::join_all(endpoints.iter().map(|e| Recorder::start(e))).await;

    let config = LoadConfig {
        clients: 32,
        ops_per_client: 60,
        documents: DOCUMENTS,
        clock_spread: 30,
        duplicate_and_reorder: false,
        seed: 7,
    };
    let history = load::run(&endpoints, &config).await;
    let finals = final_states(&endpoints[0]).await;
    let report = linearizable::check(&history, &finals)
        .unwrap_or_else(|v| panic!("{} violations:\n{}", v.len(), v.join("\n")));
    summary("3 replicas", &report, &history);
    assert_eq!(report.lost_writes, 0);
    assert!(report.acknowledged_writes > 1000);

    let latest = finals.values().flatten().count();
    assert_eq!(latest, DOCUMENTS);
    let mut client = Client::connect(endpoints[1].clone()).await.unwrap();
    let mut newest = 0;
    for i in 0..DOCUMENTS {
        newest = newest.max(client.get(&key_of(i)).await.unwrap().unwrap().revision);
    }
    let mut sequences = Vec::new();
    for recorder in recorders {
        sequences.push(recorder.finish(newest, Duration::from_secs(30)).await);
    }
    for (replica, seen) in sequences.iter().enumerate() {
        assert_eq!(
            seen, &sequences[0],
            "replica {replica} saw another sequence than replica 0"
        );
        let revisions: Vec<i64> = seen.iter().map(|d| d.revision).collect();
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "replica {replica}: revisions out of order"
        );
        for (key, states) in states_by_document(seen) {
            assert!(
                states.windows(2).all(|w| w[0].stamp < w[1].stamp),
                "{key}: a watcher saw a stamp go back"
            );
            assert_eq!(
                states.last(),
                finals[&key].as_ref(),
                "{key}: the last change seen is the stored state"
            );
        }
    }
    println!(
        "watchers on 3 replicas saw the same {} changes",
        sequences[0].len()
    );
}
