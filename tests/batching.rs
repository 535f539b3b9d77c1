//! Write-combining in the PostgreSQL store, through the public store: many
//! concurrent writes and reads travel in one statement each, and batches
//! racing over shared tenants never deadlock — without the fallback to one
//! statement per request hiding it: a batch that falls back is counted,
//! and the check requires none. A deadlock planted in the database (a
//! trigger that fails every combined statement with SQLSTATE 40P01) must
//! fail that check.
//!
//! Per-field writes (combined into `merge_fields_many` statements) race
//! with batched whole-document writes: every answer must be explained by
//! the pure merge and every document end on the join; a deadlock planted
//! in the combined per-field statement must fail the fallback check too.
//!
//! The batched merge's decisions are checked against the pure merge in the
//! batcher's unit tests (`service/src/store/postgres/batch/tests.rs`),
//! where a planted pre-merge can live under `cfg(test)`.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use settings_sync::store::{BatchConfig, DocumentStore, PostgresStore, StoreError};
use settings_sync_protocol::fields::{Change, FieldDocument, FieldOp, FieldWrite, Patch};
use settings_sync_protocol::merge::join;
use settings_sync_protocol::{Decision, DocumentKey, MergeError, MergePolicy, Value, Versioned};
use settings_sync_tests::fixtures::write;
use settings_sync_tests::postgres;

const POLICY: MergePolicy = MergePolicy {
    max_clock_jump: 3,
    ..MergePolicy::UNBOUNDED
};

async fn batched_store() -> PostgresStore {
    let url = postgres::fresh_database().await;
    let store = PostgresStore::connect_lazy(&url, 8).expect("a pool");
    store.migrate().await.expect("migrations apply");
    store.with_batching(BatchConfig {
        max: 64,
        in_flight: 2,
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
async fn sixty_four_concurrent_writes_and_reads_travel_in_one_statement_each() {
    let store = batched_store().await;
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
    assert_eq!((counts.sync_fallbacks, counts.get_fallbacks), (0, 0));
    check_change_log(&store, 64).await.unwrap();
}

/// 16 tasks of 40 random writes over 6 documents of two tenants. Every
/// write must be answered without error, the largest stamp kept, and no
/// batch may have fallen back: a deadlock between batches would show as a
/// fallback (or an error), not vanish into it.
async fn race_batches(store: &PostgresStore) -> Result<(), String> {
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
        for (key, w, reply) in task.await.map_err(|e| e.to_string())? {
            let reply = reply.map_err(|e| format!("{key} {}: {e}", w.stamp))?;
            match reply.decision {
                Decision::Applied => applied += 1,
                Decision::Stale if reply.document.state.stamp > w.stamp => {}
                Decision::Unchanged if reply.document.state == w => {}
                other => return Err(format!("{key} {}: {other:?} {reply:?}", w.stamp)),
            }
            let entry = largest.entry(key).or_insert_with(|| w.clone());
            *entry = join(Some(entry), &w).clone();
        }
    }
    for (key, expected) in &largest {
        let stored = store.get(key).await.map_err(|e| e.to_string())?;
        if stored.as_ref().map(|d| &d.state) != Some(expected) {
            return Err(format!("{key}: stored {stored:?}, expected {expected:?}"));
        }
    }
    check_change_log(store, applied).await?;
    let counts = store.batch_counts().expect("batching is on");
    if counts.sync_fallbacks != 0 || counts.get_fallbacks != 0 {
        return Err(format!(
            "batches fell back to one statement per request: {counts:?}"
        ));
    }
    if counts.sync_statements == 0 {
        return Err(format!("no batched statement ran: {counts:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_over_shared_tenants_never_deadlock_and_keep_the_largest_stamp() {
    race_batches(&batched_store().await).await.unwrap();
}

/// The planted bug: every combined statement fails as a deadlock would
/// (SQLSTATE 40P01), through a trigger only this test installs. Each write
/// then still succeeds alone, so only the fallback count shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_absorbed_by_the_fallback_is_caught() {
    let store = batched_store().await;
    sqlx::raw_sql(
        "CREATE FUNCTION planted_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF current_query() LIKE '%unnest(%' THEN
                 RAISE EXCEPTION 'planted deadlock' USING ERRCODE = 'deadlock_detected';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER planted_deadlock BEFORE INSERT OR UPDATE ON documents
             FOR EACH ROW EXECUTE FUNCTION planted_deadlock();",
    )
    .execute(store.pool())
    .await
    .expect("planting the deadlock");
    let caught = race_batches(&store)
        .await
        .expect_err("a batch that deadlocks and falls back must fail the check");
    println!("planted deadlock caught: {caught}");
}

/// Per-field writes racing with batched whole-document writes over a few
/// documents: per-field clients' patches and whole documents (merged by
/// read and conditional write), whole-document clients' writes (batched,
/// and refused while a document holds a patch). Each answer must be what
/// the pure merge says over the document it returned (the write merged
/// into it, every field decided by that field's stamp there), and each
/// document must end on the join of every write not refused — the join
/// does not depend on order, so a lost update shows.
async fn race_fields(store: &PostgresStore) -> Result<(), String> {
    let tasks: Vec<_> = (0..12u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(500 + t);
                let writer = format!("f{t}");
                let mut sent = Vec::new();
                // A writer never reuses a stamp (that would be refused).
                let mut used = std::collections::HashSet::new();
                for i in 0..30 {
                    let key = doc_key(rng.random_range(0..4));
                    let mut clock = rng.random_range(1..40);
                    if !used.insert(clock) {
                        clock = 40 + i;
                    }
                    let write = random_field_write(&mut rng, clock, &writer);
                    let reply = match &write {
                        Racer::Fields(w) => store
                            .sync_fields(&key, w, MergePolicy::UNBOUNDED)
                            .await
                            .map(|o| (o.report.decision, o.report.fields, o.document)),
                        Racer::Whole(w) => store
                            .sync(&key, w, MergePolicy::UNBOUNDED)
                            .await
                            .map(|o| (o.decision, BTreeMap::new(), Some(o.document))),
                    };
                    sent.push((key, write, reply));
                }
                sent
            })
        })
        .collect();
    let mut joined: BTreeMap<DocumentKey, FieldDocument> = BTreeMap::new();
    let (mut refused, mut patches) = (0, 0);
    for task in tasks {
        for (key, write, reply) in task.await.map_err(|e| e.to_string())? {
            let as_field = write.as_field_write();
            match reply {
                Err(StoreError::Merge(MergeError::FieldMerged))
                    if matches!(write, Racer::Whole(_)) =>
                {
                    refused += 1;
                    continue;
                }
                Err(e) => return Err(format!("{key} {}: {e}", as_field.stamp)),
                Ok((decision, fields, document)) => {
                    // No document: an empty patch read a document never written.
                    let answered = document.map(|d| d.field_document()).unwrap_or_default();
                    explain(&answered, &as_field, decision, &fields)
                        .map_err(|e| format!("{key} {:?}: {e}", as_field))?;
                }
            }
            patches += usize::from(matches!(write, Racer::Fields(_)));
            let entry = joined.entry(key).or_default();
            *entry = entry.join_write(&as_field);
        }
    }
    for (key, expected) in &joined {
        let stored = store.get(key).await.map_err(|e| e.to_string())?;
        let stored = stored.map(|d| d.field_document()).unwrap_or_default();
        if stored != *expected {
            return Err(format!(
                "{key}: stored {stored:?}, the join is {expected:?}"
            ));
        }
    }
    let counts = store.batch_counts().expect("batching is on");
    if counts.field_fallbacks != 0 || counts.sync_fallbacks != 0 {
        return Err(format!(
            "batches fell back to one statement per request: {counts:?}"
        ));
    }
    if counts.field_statements == 0 {
        return Err(format!("no combined per-field statement ran: {counts:?}"));
    }
    println!(
        "{patches} per-field writes ({} in {} combined statements), {refused} whole-document \
         writes refused on patched documents",
        counts.field_writes, counts.field_statements
    );
    Ok(())
}

#[derive(Debug)]
enum Racer {
    Fields(FieldWrite),
    Whole(settings_sync_protocol::Versioned),
}

impl Racer {
    fn as_field_write(&self) -> FieldWrite {
        match self {
            Racer::Fields(w) => w.clone(),
            Racer::Whole(w) => FieldWrite {
                stamp: w.stamp.clone(),
                change: Change::Whole(w.value.clone()),
            },
        }
    }
}

fn random_field_write(rng: &mut StdRng, clock: u64, writer: &str) -> Racer {
    let names = ["a", "b", "c", "d"];
    let mut fields = serde_json::Map::new();
    for name in names {
        if rng.random_bool(0.4) {
            fields.insert(
                name.into(),
                serde_json::json!({ "by": writer, "clock": clock }),
            );
        }
    }
    let stamp = write(clock, writer, serde_json::json!({})).stamp;
    match rng.random_range(0..6) {
        0 => Racer::Whole(write(clock, writer, serde_json::Value::Object(fields))),
        1 => Racer::Fields(FieldWrite {
            stamp,
            change: Change::Whole(Value::object(fields)),
        }),
        _ => {
            let patch: Patch = (fields.into_iter())
                .map(|(name, v)| {
                    let op = if rng.random_bool(0.2) {
                        FieldOp::Delete
                    } else {
                        FieldOp::Set(v)
                    };
                    (name, op)
                })
                .collect();
            Racer::Fields(FieldWrite {
                stamp,
                change: Change::Patch(patch),
            })
        }
    }
}

/// Whether `answered`, the document a write's answer carried, explains the
/// decisions: the write is merged into it, and each decision is the pure
/// merge's against the register it lost to or replaced.
fn explain(
    answered: &FieldDocument,
    write: &FieldWrite,
    decision: Decision,
    fields: &BTreeMap<String, Decision>,
) -> Result<(), String> {
    if answered.join_write(write) != *answered {
        return Err(format!("the answer {answered:?} does not hold the write"));
    }
    for (name, d) in fields {
        let at = answered.stamp_of(name);
        let ok = match d {
            Decision::Applied | Decision::Unchanged => at == Some(&write.stamp),
            Decision::Stale => at > Some(&write.stamp),
        };
        if !ok {
            return Err(format!(
                "field {name}: {d:?}, but the answer holds it at {at:?}"
            ));
        }
    }
    let stale = fields.values().any(|d| *d == Decision::Stale);
    let whole_stale = answered.stamp() > Some(&write.stamp);
    let expected_stale = match &write.change {
        Change::Patch(_) => stale,
        Change::Whole(_) => whole_stale,
    };
    if (decision == Decision::Stale) != expected_stale {
        return Err(format!("{decision:?} for the write with fields {fields:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_field_writes_racing_batched_whole_writes_each_get_the_pure_decision_and_end_on_the_join()
 {
    race_fields(&batched_store().await).await.unwrap();
}

/// The planted bug: every combined per-field statement fails as a
/// deadlock would; each write then succeeds alone, so only the fallback
/// count shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_of_combined_per_field_statements_absorbed_by_the_fallback_is_caught() {
    let store = batched_store().await;
    sqlx::raw_sql(
        "CREATE FUNCTION planted_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF current_query() LIKE '%merge_fields_many(%' THEN
                 RAISE EXCEPTION 'planted deadlock' USING ERRCODE = 'deadlock_detected';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER planted_deadlock BEFORE INSERT OR UPDATE ON documents
             FOR EACH ROW EXECUTE FUNCTION planted_deadlock();",
    )
    .execute(store.pool())
    .await
    .expect("planting the deadlock");
    let caught = race_fields(&store)
        .await
        .expect_err("a per-field batch that deadlocks and falls back must fail the check");
    println!("planted deadlock caught: {caught}");
}
