//! Differential test: the merge each store runs in SQL and the pure
//! `settings_sync_protocol::merge` agree on random inputs, edge stamps
//! included (clock 1 and i64::MAX, equal clocks, writers that order
//! differently bytewise than by any locale, tombstones, the jump limit).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use settings_sync::store::{DocumentStore, PostgresStore, SqliteStore, StoreError};
use settings_sync_protocol::{
    Clock, Decision, DocumentKey, MergeError, MergePolicy, Versioned, merge,
};
use settings_sync_tests::fixtures::write;
use settings_sync_tests::postgres;

const CASES: usize = 400;
/// Ids that sort differently bytewise than under a locale collation.
const WRITERS: [&str; 10] = ["a", "B", "b", "Z", "a-", "a.", "a_", "w-1", "w-10", "w-9"];

fn random_write(rng: &mut StdRng) -> Versioned {
    let max = Clock::MAX.get();
    let clock = *[1, 2, 3, max - 1, max, rng.random_range(1..=max)]
        .choose(rng)
        .expect("clocks");
    let writer = WRITERS.choose(rng).expect("writers");
    let value = match rng.random_range(0..3) {
        0 => serde_json::Value::Null,
        n => json!({"n": n}),
    };
    write(clock, writer, value)
}

fn policy(rng: &mut StdRng) -> MergePolicy {
    if rng.random_bool(0.5) {
        MergePolicy::UNBOUNDED
    } else {
        MergePolicy { max_clock_jump: 5 }
    }
}

/// What the pure merge says, as (decision or error, state after).
type Expected = (Result<Decision, MergeError>, Option<Versioned>);

fn expected(stored: Option<&Versioned>, incoming: &Versioned, policy: MergePolicy) -> Expected {
    let decision = merge(stored, incoming, policy);
    let after = match decision {
        Ok(Decision::Applied) => Some(incoming.clone()),
        _ => stored.cloned(),
    };
    (decision, after)
}

/// Runs `cases` random (stored, incoming, policy) triples through `store`;
/// returns the disagreements with the pure merge.
async fn disagreements<S: DocumentStore>(store: &S, seed: u64, cases: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut found = Vec::new();
    for case in 0..cases {
        let key = DocumentKey::parse("acme", &format!("case-{case}"), "alerts").expect("a key");
        let stored = rng.random_bool(0.8).then(|| random_write(&mut rng));
        let incoming = if rng.random_bool(0.2) {
            // Same stamp, maybe other content: the conflicting-content case.
            let base = stored.clone().unwrap_or_else(|| random_write(&mut rng));
            write(
                base.stamp.clock.get(),
                base.stamp.writer.as_str(),
                json!({"other": rng.random_bool(0.5)}),
            )
        } else {
            random_write(&mut rng)
        };
        let policy = policy(&mut rng);
        if let Some(stored) = &stored {
            store
                .sync(&key, stored, MergePolicy::UNBOUNDED)
                .await
                .expect("seeding the stored write");
        }
        let (want, want_after) = expected(stored.as_ref(), &incoming, policy);
        let got = match store.sync(&key, &incoming, policy).await {
            Ok(outcome) => Ok(outcome.decision),
            Err(StoreError::Merge(error)) => Err(error),
            Err(other) => {
                // E.g. the SQL guard refusing a write the pure merge applies.
                found.push(format!("case {case}: store error: {other}"));
                continue;
            }
        };
        let got_after = store
            .get(&key)
            .await
            .expect("reading back")
            .map(|d| d.state);
        if got != want || got_after != want_after {
            found.push(format!(
                "case {case}: stored {:?}, incoming {}, {policy:?}: store said {got:?} leaving {:?}; pure merge says {want:?} leaving {:?}",
                stored.as_ref().map(|s| s.stamp.to_string()),
                incoming.stamp,
                got_after.map(|s| s.stamp.to_string()),
                want_after.map(|s| s.stamp.to_string()),
            ));
        }
    }
    found
}

async fn postgres_store() -> PostgresStore {
    let store = PostgresStore::connect_lazy(&postgres::fresh_database().await, 4).expect("a pool");
    store.migrate().await.expect("migrating");
    store
}

#[tokio::test]
async fn the_postgres_merge_agrees_with_the_pure_merge() {
    let found = disagreements(&postgres_store().await, 1, CASES).await;
    assert!(
        found.is_empty(),
        "{} disagreements:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[tokio::test]
async fn the_sqlite_merge_agrees_with_the_pure_merge() {
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opening SQLite");
    let found = disagreements(&store, 2, CASES).await;
    assert!(
        found.is_empty(),
        "{} disagreements:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// A planted bug: writers compared under a locale collation instead of
/// bytewise. The differential test must notice.
#[tokio::test]
async fn a_locale_collation_on_writer_is_caught() {
    let store = postgres_store().await;
    sqlx::query(r#"ALTER TABLE documents ALTER COLUMN writer TYPE text COLLATE "und-x-icu""#)
        .execute(store.pool())
        .await
        .expect("planting the collation");
    let found = disagreements(&store, 3, CASES).await;
    assert!(
        !found.is_empty(),
        "a locale-ordered writer column went unnoticed"
    );
    println!("planted locale collation caught, e.g.: {}", found[0]);
}
