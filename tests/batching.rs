//! Write-combining in the PostgreSQL store: concurrent Syncs grouped into
//! one statement answer every caller as the pure merge would in some
//! sequential order, and end on the pure fold.
//!
//! The deterministic suites run on a current-thread runtime: `join_all`
//! hands every write of a round to the batcher before its task runs, so a
//! round is exactly one batch (several writes to one document included).
//! A planted pre-merge (the last-submitted write wins) must fail the same
//! check, which shows the check can catch a wrong batch.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use settings_sync::store::{BatchConfig, DocumentStore, PostgresStore, PreMerge, StoreError};
use settings_sync_protocol::merge::join;
use settings_sync_protocol::{Decision, DocumentKey, MergePolicy, Value, Versioned, merge};
use settings_sync_tests::fixtures::write;
use settings_sync_tests::postgres;

type Answer = Result<(Decision, Versioned), StoreError>;

async fn batched_store(rule: PreMerge) -> PostgresStore {
    let url = postgres::fresh_database().await;
    let store = PostgresStore::connect_lazy(&url, 8).expect("a pool");
    store.migrate().await.expect("migrations apply");
    store.with_batching(BatchConfig {
        max: 64,
        in_flight: 2,
        rule,
        ..BatchConfig::default()
    })
}

fn doc_key(i: usize) -> DocumentKey {
    // Two tenants, so batches bump several counters in one statement.
    let tenant = if i.is_multiple_of(2) {
        "acme"
    } else {
        "globex"
    };
    DocumentKey::parse(tenant, &format!("user-{i}"), "alerts").expect("a valid key")
}

/// A random write: few clocks and writers, so equal clocks and equal
/// stamps are common; sometimes other content for a stamp (a broken
/// client), sometimes a tombstone; clocks up to 8 against a jump limit of
/// 3, so some writes may only update and some jump too far.
fn random_write(rng: &mut StdRng) -> Versioned {
    let clock = rng.random_range(0..=8u64);
    let writer = ["a", "b", "c"][rng.random_range(0..3)];
    if rng.random_bool(0.12) {
        let mut w = write(clock, writer, serde_json::json!({}));
        w.value = Value::TOMBSTONE;
        return w;
    }
    let odd = rng.random_bool(0.1);
    write(
        clock,
        writer,
        serde_json::json!({"clock": clock, "writer": writer, "odd": odd}),
    )
}

const POLICY: MergePolicy = MergePolicy { max_clock_jump: 3 };

/// Checks one document's answers in one batch against the pure merge.
/// The APPLIED writes, by stamp, must each win over the state before
/// them, starting from `before`; every other write must get exactly what
/// the pure merge says against one of those states (that is where it sits
/// in the sequential order). Returns the state after the batch.
fn check_document(
    before: Option<Versioned>,
    answers: &[(Versioned, Answer)],
) -> Result<Option<Versioned>, String> {
    let mut applied: Vec<&Versioned> = answers
        .iter()
        .filter(|(_, a)| matches!(a, Ok((Decision::Applied, _))))
        .map(|(w, _)| w)
        .collect();
    applied.sort_by(|a, b| a.stamp.cmp(&b.stamp));
    let mut states = vec![before.clone()];
    for w in &applied {
        let current = states.last().expect("a state").as_ref();
        if merge(current, w, POLICY) != Ok(Decision::Applied) {
            return Err(format!("{} was APPLIED over {:?}", w.stamp, current));
        }
        states.push(Some((*w).clone()));
    }
    for (w, answer) in answers {
        let explained = match answer {
            Ok((Decision::Applied, stored)) => stored == w,
            Ok((decision, stored)) => states.iter().any(|s| {
                s.as_ref() == Some(stored) && merge(Some(stored), w, POLICY) == Ok(*decision)
            }),
            Err(StoreError::Merge(error)) => states
                .iter()
                .any(|s| merge(s.as_ref(), w, POLICY).as_ref() == Err(error)),
            Err(other) => return Err(format!("{} failed: {other}", w.stamp)),
        };
        if !explained {
            return Err(format!(
                "{} got {answer:?}, which no sequential order gives from {before:?}",
                w.stamp
            ));
        }
    }
    let after = states.pop().expect("a state");
    // The pure fold: every write that was not rejected, joined.
    let folded = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .fold(before, |s, (w, _)| Some(join(s.as_ref(), w).clone()));
    if folded != after {
        return Err(format!("ended on {after:?}, the pure fold is {folded:?}"));
    }
    Ok(after)
}

fn describe(w: &Versioned, answer: &Answer) -> String {
    let got = match answer {
        Ok((decision, stored)) => format!(
            "{decision:?}, stored {} {}",
            stored.stamp,
            stored.value.canonical()
        ),
        Err(e) => e.to_string(),
    };
    format!("{} {} -> {got}", w.stamp, w.value.canonical())
}

/// Rounds of random batches over a few documents; returns the first
/// disagreement with the pure merge.
async fn random_rounds(store: &PostgresStore, seed: u64, rounds: usize) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<DocumentKey, Option<Versioned>> = BTreeMap::new();
    let mut applied_total = 0;
    for round in 0..rounds {
        let writes: Vec<(DocumentKey, Versioned)> = (0..rng.random_range(2..=16))
            .map(|_| (doc_key(rng.random_range(0..4)), random_write(&mut rng)))
            .collect();
        let answers = futures::future::join_all(writes.iter().map(|(key, w)| async move {
            store
                .sync(key, w, POLICY)
                .await
                .map(|o| (o.decision, o.document.state))
        }))
        .await;
        let mut by_key: BTreeMap<DocumentKey, Vec<(Versioned, Answer)>> = BTreeMap::new();
        for ((key, w), answer) in writes.into_iter().zip(answers) {
            applied_total += usize::from(matches!(answer, Ok((Decision::Applied, _))));
            by_key.entry(key).or_default().push((w, answer));
        }
        for (key, answers) in by_key {
            let before = model.get(&key).cloned().flatten();
            let after = check_document(before, &answers).map_err(|e| {
                let sent: Vec<String> = answers.iter().map(|(w, a)| describe(w, a)).collect();
                format!("seed {seed}, round {round}, {key}: {e}\n  batch: {sent:#?}")
            })?;
            let stored = store.get(&key).await.map_err(|e| e.to_string())?;
            if stored.as_ref().map(|d| &d.state) != after.as_ref() {
                return Err(format!(
                    "round {round}, {key}: stored {stored:?}, expected {after:?}"
                ));
            }
            model.insert(key, after);
        }
    }
    check_change_log(store, applied_total).await
}

/// One change row per APPLIED write, each with its own revision, and each
/// document's revision is its newest change.
async fn check_change_log(store: &PostgresStore, applied: usize) -> Result<(), String> {
    let (changes, stale_revisions): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM changes),
                (SELECT count(*) FROM documents d WHERE d.revision <>
                    (SELECT max(revision) FROM changes c
                     WHERE (c.tenant, c.owner, c.name) = (d.tenant, d.owner, d.name)))",
    )
    .fetch_one(store.pool())
    .await
    .map_err(|e| e.to_string())?;
    if changes != applied as i64 {
        return Err(format!(
            "{changes} change rows for {applied} APPLIED writes"
        ));
    }
    if stale_revisions != 0 {
        return Err(format!(
            "{stale_revisions} documents not at their newest change"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn batched_writes_get_the_decisions_of_a_sequential_merge_and_end_on_the_pure_fold() {
    for seed in 0..4 {
        // A fresh database per seed: the model starts from no documents.
        let store = batched_store(PreMerge::LargestStamp).await;
        random_rounds(&store, seed, 60).await.unwrap();
        let counts = store.batch_counts().expect("batching is on");
        assert!(
            counts.sync_statements > 0 && counts.sync_writes > counts.sync_statements,
            "the rounds went through the batched statement: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_where_the_last_submitted_write_wins_is_caught() {
    let mut caught = None;
    for seed in 0..4 {
        let store = batched_store(PreMerge::PlantedLastSubmittedWins).await;
        if let Err(e) = random_rounds(&store, seed, 60).await {
            caught = Some(e);
            break;
        }
    }
    let caught = caught.expect("the planted pre-merge must fail the check");
    println!("caught: {caught}");
}

#[tokio::test(flavor = "current_thread")]
async fn sixty_four_concurrent_writes_and_reads_travel_in_one_statement_each() {
    let store = batched_store(PreMerge::LargestStamp).await;
    let keys: Vec<DocumentKey> = (0..64).map(doc_key).collect();
    let w = write(1, "tab", serde_json::json!({"n": 1}));
    let replies = futures::future::join_all(keys.iter().map(|k| store.sync(k, &w, POLICY))).await;
    for reply in replies {
        assert_eq!(reply.unwrap().decision, Decision::Applied);
    }
    let reads = futures::future::join_all(keys.iter().map(|k| store.get(k))).await;
    for (key, read) in keys.iter().zip(reads) {
        assert_eq!(read.unwrap().expect("written").key, *key);
    }
    let counts = store.batch_counts().expect("batching is on");
    assert_eq!((counts.sync_statements, counts.sync_writes), (1, 64));
    assert_eq!((counts.get_statements, counts.get_reads), (1, 64));
    check_change_log(&store, 64).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_over_shared_tenants_never_deadlock_and_keep_the_largest_stamp() {
    let store = batched_store(PreMerge::LargestStamp).await;
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(100 + t);
                let writer = format!("w{t}");
                let mut sent = Vec::new();
                for _ in 0..40 {
                    let key = doc_key(rng.random_range(0..6));
                    let clock = rng.random_range(0..50);
                    let w = write(clock, &writer, serde_json::json!({"clock": clock}));
                    let reply = store.sync(&key, &w, MergePolicy::UNBOUNDED).await;
                    sent.push((key, w, reply));
                }
                sent
            })
        })
        .collect();
    let mut largest: BTreeMap<DocumentKey, Versioned> = BTreeMap::new();
    let mut applied = 0;
    for task in tasks {
        for (key, w, reply) in task.await.unwrap() {
            // A deadlock would surface here as a database error.
            let reply = reply.unwrap_or_else(|e| panic!("{key} {}: {e}", w.stamp));
            match reply.decision {
                Decision::Applied => applied += 1,
                Decision::Stale => assert!(reply.document.state.stamp > w.stamp),
                Decision::Unchanged => assert_eq!(reply.document.state, w),
            }
            let entry = largest.entry(key).or_insert_with(|| w.clone());
            *entry = join(Some(entry), &w).clone();
        }
    }
    for (key, expected) in &largest {
        let stored = store.get(key).await.unwrap().expect("written");
        assert_eq!(&stored.state, expected, "{key}");
    }
    check_change_log(&store, applied).await.unwrap();
    assert!(
        store
            .batch_counts()
            .expect("batching is on")
            .sync_statements
            > 0
    );
}
