//! The override log through the public store, on both stores: every write
//! that lost — arrived stale, or overtaken — is recorded exactly as the
//! pure rule (`settings_sync_protocol::overrides`) says, once, whole for a
//! whole-document document and per field once a patch is involved; the
//! log pages newest first; pruning keeps the newest per document and
//! drops what is past the retention. Write-combining is checked against
//! the same rule in the batcher's unit tests
//! (`service/src/store/postgres/batch/tests.rs`), with a planted batch
//! that forgets a pre-merged write.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use settings_sync::store::{DocumentStore, PostgresStore, SqliteStore};
use settings_sync_protocol::fields::{self, Change, FieldDocument, FieldOp, FieldWrite, Patch};
use settings_sync_protocol::overrides::{self, Lost};
use settings_sync_protocol::{DocumentKey, MergePolicy, Stamp, Versioned, merge};
use settings_sync_tests::fixtures::write;
use settings_sync_tests::postgres;

const POLICY: MergePolicy = MergePolicy {
    max_clock_jump: 4,
    ..MergePolicy::UNBOUNDED
};

/// (field, losing stamp) → (value, winner, kind): what the log says of a
/// document, one entry per losing write (and field).
type Log = BTreeMap<LogKey, LogEntry>;
type LogKey = (Option<String>, Stamp);
type LogEntry = (Option<serde_json::Value>, Stamp, &'static str);

fn entry(lost: Lost) -> (LogKey, LogEntry) {
    let value = lost.value.map(|v| serde_json::from_str(&v).expect("JSON"));
    (
        (lost.field, lost.stamp),
        (value, lost.winner, lost.kind.as_str()),
    )
}

/// The whole log of `key`, read in pages of three, newest first.
async fn read_log(store: &impl DocumentStore, key: &DocumentKey) -> Log {
    let mut log = Log::new();
    let mut before = None;
    loop {
        let page = store.list_overrides(key, before, 3).await.expect("a page");
        if let (Some(first), Some(b)) = (page.first(), before) {
            assert!(first.id < b, "pages move down");
        }
        assert!(page.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for o in page {
            let (k, v) = entry(o.lost);
            assert!(log.insert(k, v).is_none(), "a losing write recorded twice");
        }
    }
    log
}

fn random_whole(rng: &mut StdRng) -> Versioned {
    let clock = rng.random_range(1..=9u64);
    let writer = ["a", "b", "c"][rng.random_range(0..3)];
    if rng.random_bool(0.15) {
        return write(clock, writer, serde_json::Value::Null);
    }
    write(
        clock,
        writer,
        serde_json::json!({"clock": clock, "writer": writer}),
    )
}

fn random_field_write(rng: &mut StdRng) -> FieldWrite {
    let w = random_whole(rng);
    let json = serde_json::json!({"c": w.stamp.clock.get(), "w": w.stamp.writer.as_str()});
    let mut ops = Patch::new();
    for name in ["alerts", "theme", "airports"] {
        if rng.random_bool(0.5) {
            let op = if rng.random_bool(0.2) {
                FieldOp::Delete
            } else {
                FieldOp::Set(json.clone())
            };
            ops.insert(name.to_owned(), op);
        }
    }
    let change = if rng.random_bool(0.2) {
        let set = (ops.into_iter()).filter_map(|(n, op)| Some((n, op.value()?.clone())));
        Change::Whole(settings_sync_protocol::Value::object(set.collect()))
    } else {
        Change::Patch(ops)
    };
    FieldWrite {
        stamp: w.stamp,
        change,
    }
}

/// Random whole-document writes to one document and per-field writes to
/// another, one at a time, replays included; the log must be the pure
/// rule's, and every acknowledged write but the final one must be in it.
async fn every_loser_is_recorded_as_the_pure_rule_says(store: &impl DocumentStore, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let whole_key = DocumentKey::parse("acme", &format!("u{seed}"), "whole").unwrap();
    let field_key = DocumentKey::parse("acme", &format!("u{seed}"), "fields").unwrap();
    let (mut state, mut want) = (None::<Versioned>, Log::new());
    let mut acked: Vec<Stamp> = Vec::new();
    let mut sent: Vec<Versioned> = Vec::new();
    for _ in 0..30 {
        let w = match sent.len() {
            n if n > 0 && rng.random_bool(0.2) => sent[rng.random_range(0..n)].clone(),
            _ => random_whole(&mut rng),
        };
        sent.push(w.clone());
        let pure = merge(state.as_ref(), &w, POLICY);
        let got = store.sync(&whole_key, &w, POLICY).await;
        match (pure, got) {
            (Ok(decision), Ok(outcome)) => {
                assert_eq!(decision, outcome.decision, "{}", w.stamp);
                if let Some(lost) = overrides::whole(state.as_ref(), &w, decision) {
                    let (k, v) = entry(lost);
                    want.entry(k).or_insert(v);
                }
                acked.push(w.stamp.clone());
                if decision == settings_sync_protocol::Decision::Applied {
                    state = Some(w);
                }
            }
            (Err(_), Err(_)) => {}
            (pure, got) => panic!("{}: pure {pure:?}, store {got:?}", w.stamp),
        }
    }
    let log = read_log(store, &whole_key).await;
    assert_eq!(log, want, "seed {seed}: the whole-document log");
    let final_stamp = state.map(|s| s.stamp);
    for stamp in acked.iter().filter(|s| Some(*s) != final_stamp.as_ref()) {
        assert!(
            log.contains_key(&(None, stamp.clone())),
            "{stamp} lost without a trace"
        );
    }

    let (mut doc, mut want) = (FieldDocument::new(), Log::new());
    for _ in 0..30 {
        let w = random_field_write(&mut rng);
        let pure = fields::merge(&doc, &w, POLICY);
        let got = store.sync_fields(&field_key, &w, POLICY).await;
        match (pure, got) {
            (Ok(report), Ok(outcome)) => {
                assert_eq!(report, outcome.report);
                let next = doc.join_write(&w);
                for lost in overrides::of_field_write(&doc, &next, &w, &report) {
                    let (k, v) = entry(lost);
                    want.entry(k).or_insert(v);
                }
                doc = next;
            }
            (Err(_), Err(_)) => {}
            (pure, got) => panic!("{}: pure {pure:?}, store {got:?}", w.stamp),
        }
    }
    assert_eq!(
        read_log(store, &field_key).await,
        want,
        "seed {seed}: the per-field log"
    );
}

/// Five losers, then pruning to three per document, then past the retention.
async fn pruning_keeps_the_newest_and_drops_the_expired(store: &impl DocumentStore) {
    let key = DocumentKey::parse("acme", "pruned", "alerts").unwrap();
    for clock in 1..=6 {
        store
            .sync(
                &key,
                &write(clock, "a", serde_json::json!({"n": clock})),
                POLICY,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store.list_overrides(&key, None, 100).await.unwrap().len(),
        5
    );
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.prune_overrides(long_ago, 3).await.unwrap(), 2);
    let kept = store.list_overrides(&key, None, 100).await.unwrap();
    let clocks: Vec<u64> = kept.iter().map(|o| o.lost.stamp.clock.get()).collect();
    assert_eq!(clocks, [5, 4, 3], "the newest three are kept");
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(store.prune_overrides(later, 20).await.unwrap(), 3);
    assert!(
        store
            .list_overrides(&key, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/settings.db", dir.path().display());
    (SqliteStore::open(&url, 4).await.unwrap(), dir)
}

async fn postgres_store() -> PostgresStore {
    let store = PostgresStore::connect_lazy(&postgres::fresh_database().await, 4).unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn sqlite_records_every_losing_write_once_as_the_pure_rule_says() {
    let (store, _dir) = sqlite().await;
    for seed in 0..20 {
        every_loser_is_recorded_as_the_pure_rule_says(&store, seed).await;
    }
}

#[tokio::test]
async fn postgres_records_every_losing_write_once_as_the_pure_rule_says() {
    let store = postgres_store().await;
    for seed in 0..20 {
        every_loser_is_recorded_as_the_pure_rule_says(&store, seed).await;
    }
}

#[tokio::test]
async fn sqlite_prunes_overrides_to_the_newest_per_document_and_by_age() {
    let (store, _dir) = sqlite().await;
    pruning_keeps_the_newest_and_drops_the_expired(&store).await;
}

#[tokio::test]
async fn postgres_prunes_overrides_to_the_newest_per_document_and_by_age() {
    pruning_keeps_the_newest_and_drops_the_expired(&postgres_store().await).await;
}

fn field_patch(clock: u64, writer: &str, field: &str, value: serde_json::Value) -> FieldWrite {
    FieldWrite {
        stamp: write(clock, writer, serde_json::json!({})).stamp,
        change: Change::Patch([(field.to_owned(), FieldOp::Set(value))].into()),
    }
}

/// Over the wire, per field: the phone's alerts lose to the laptop's, the
/// theme of neither; the log names the field, and `reapply` patches just
/// that field back under a fresh stamp.
async fn a_lost_field_is_listed_and_reapplied_as_a_patch(backend: settings_sync_tests::Backend) {
    let server = settings_sync_tests::TestServer::start(backend).await;
    let mut client = server.client().await;
    let key = DocumentKey::parse("acme", "alice", "alerts").unwrap();
    let sent = [
        field_patch(1, "phone", "email", serde_json::json!(true)),
        field_patch(2, "laptop", "theme", serde_json::json!("dark")),
        field_patch(3, "laptop", "email", serde_json::json!(false)),
    ];
    for w in &sent {
        client.sync_fields(&key, w).await.unwrap();
    }
    let page = client.list_overrides(&key, 0, None).await.unwrap();
    assert_eq!(page.overrides.len(), 1, "{page:?}");
    let lost = &page.overrides[0];
    assert_eq!(lost.lost.field.as_deref(), Some("email"));
    assert_eq!(lost.lost.value.as_deref(), Some("true"));
    assert_eq!(lost.lost.winner, sent[2].stamp);
    let reply = client.reapply(&key, lost).await.unwrap();
    assert_eq!(reply.decision, settings_sync_protocol::Decision::Applied);
    assert_eq!(
        reply.document.state.value.to_json(),
        serde_json::json!({"email": true, "theme": "dark"}),
        "only the lost field came back"
    );
    assert_eq!(reply.document.state.stamp.clock.get(), 4);
    let page = client.list_overrides(&key, 1, None).await.unwrap();
    assert_eq!(page.overrides[0].lost.stamp, sent[2].stamp, "newest first");
    assert!(page.next_page_token.is_some(), "a second page follows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_field_is_listed_and_reapplied_as_a_patch_in_sqlite() {
    a_lost_field_is_listed_and_reapplied_as_a_patch(settings_sync_tests::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_field_is_listed_and_reapplied_as_a_patch_in_postgres() {
    a_lost_field_is_listed_and_reapplied_as_a_patch(settings_sync_tests::Backend::Postgres).await;
}
