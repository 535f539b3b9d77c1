//! Differential test: the merge each store runs in SQL and the pure
//! `settings_sync_protocol::merge` agree. proptest generates short sequences
//! of writes to one fresh document, each with its own merge policy, and
//! every step is compared: the decision (or the error), the state the store
//! answers, the state it then holds, and that the revision moves exactly
//! when a write is applied.
//!
//! Edge stamps are generated on purpose: clocks 1, 2, 3, 2^63−2 and 2^63−1
//! (i64::MAX); equal clocks with different writers; writers that differ
//! only in case or punctuation, so bytewise and locale order disagree;
//! repeated stamps with the same and with other content; tombstones; and
//! the clock-jump limit, unbounded, at i64::MAX, and small (0 to 4), which
//! also takes PostgreSQL's update-only statement.
//!
//! A planted bug must be caught: the writer column under a locale collation
//! in PostgreSQL.
//!
//! [`fields`]: the same for the opt-in per-field merge (patches).

mod fields;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::json;
use settings_sync::store::{DocumentStore, PostgresStore, SqliteStore, StoreError};
use settings_sync_protocol::{
    Decision, Document, DocumentKey, MergeError, MergePolicy, Versioned, merge,
};
use settings_sync_tests::fixtures::write;
use settings_sync_tests::postgres;
use tokio::runtime::Runtime;

/// The largest clock, i64::MAX (`Clock::MAX`).
const MAX: u64 = i64::MAX as u64;

/// Writers whose bytewise order differs from a locale's: case, and
/// punctuation that sorts between upper and lower case bytewise.
const WRITERS: &[&str] = &[
    "a", "A", "b", "B", "z", "Z", "a-", "a.", "a_", "a:", "a-b", "a.b", "ab", "aB", "Ab", "w-9",
    "w-10", "_", "-", "0",
];

/// Every edge the generator must reach in a run of 200 sequences or more.
const EDGES: &[&str] = &[
    "APPLIED",
    "STALE",
    "UNCHANGED",
    "same stamp, other content",
    "clock jump refused",
    "equal clocks, other writers",
    "equal clocks, writers differing only in case",
    "equal clocks, writers with punctuation",
    "clock i64::MAX",
    "clock 1",
    "tombstone",
    "clock past the jump limit from zero (update only)",
];

/// One write of a sequence, before its stamp is resolved.
#[derive(Clone, Debug)]
enum Raw {
    Fresh(u64, String, Option<u8>),
    /// The stamp of an earlier write of the sequence, with this content.
    Repeat(Index, Option<u8>),
    /// The clock of an earlier write, its writer changed only in case or
    /// by a punctuation mark.
    Twin(Index, usize, Option<u8>),
}

/// A writer id that differs from `writer` only in case or punctuation.
fn twin(writer: &str, how: usize) -> String {
    match how % 4 {
        0 if writer.bytes().any(|b| b.is_ascii_alphabetic()) => writer
            .chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect(),
        1 => format!("{writer}-"),
        2 => format!("{writer}."),
        _ => format!("{writer}_"),
    }
}

/// One step: a write and the policy it is merged under.
#[derive(Clone)]
struct Step {
    write: Versioned,
    policy: MergePolicy,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (max jump {})",
            self.write.stamp,
            self.write.value.canonical(),
            self.policy.max_clock_jump
        )
    }
}

fn content(n: Option<u8>) -> serde_json::Value {
    n.map_or(serde_json::Value::Null, |n| json!({ "n": n }))
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let clock = prop_oneof![
        Just(1u64),
        Just(2),
        Just(3),
        Just(MAX - 1),
        Just(MAX),
        1..=8u64,
        1..=MAX,
    ];
    let writer = prop_oneof![
        3 => prop::sample::select(WRITERS).prop_map(String::from),
        1 => "[A-Za-z0-9._:-]{1,8}",
    ];
    // None: a tombstone.
    let body = || prop::option::weighted(0.8, 0..3u8);
    let raw = prop_oneof![
        3 => (clock, writer, body()).prop_map(|(c, w, n)| Raw::Fresh(c, w, n)),
        1 => (any::<Index>(), body()).prop_map(|(i, n)| Raw::Repeat(i, n)),
        1 => (any::<Index>(), 0..4usize, body()).prop_map(|(i, how, n)| Raw::Twin(i, how, n)),
    ];
    let policy = prop_oneof![
        Just(MergePolicy::UNBOUNDED),
        Just(MergePolicy {
            max_clock_jump: MAX,
            ..MergePolicy::UNBOUNDED
        }),
        (0..=4u64).prop_map(|max_clock_jump| MergePolicy {
            max_clock_jump,
            ..MergePolicy::UNBOUNDED
        }),
    ];
    prop::collection::vec((raw, policy), 1..=6).prop_map(|raws| {
        let mut steps: Vec<Step> = Vec::new();
        for (raw, policy) in raws {
            let write = match raw {
                Raw::Fresh(clock, writer, n) => write(clock, &writer, content(n)),
                Raw::Repeat(_, n) | Raw::Twin(_, _, n) if steps.is_empty() => {
                    write(1, "a", content(n))
                }
                Raw::Repeat(i, n) => {
                    let stamp = &i.get(&steps).write.stamp;
                    write(stamp.clock.get(), stamp.writer.as_str(), content(n))
                }
                Raw::Twin(i, how, n) => {
                    let stamp = &i.get(&steps).write.stamp;
                    write(
                        stamp.clock.get(),
                        &twin(stamp.writer.as_str(), how),
                        content(n),
                    )
                }
            };
            steps.push(Step { write, policy });
        }
        steps
    })
}

/// What happened to one write: the decision or error, and the state
/// answered with it.
type Answer = Result<(Decision, Versioned), MergeError>;

fn show(answer: &Answer) -> String {
    match answer {
        Ok((decision, state)) => format!(
            "{}, holding {} {}",
            decision.as_str(),
            state.stamp,
            state.value.canonical()
        ),
        Err(error) => format!("refused: {error}"),
    }
}

/// Names of what a step exercised, tallied to show the edges were reached.
fn exercised(stored: Option<&Versioned>, step: &Step, want: &Answer) -> Vec<&'static str> {
    let mut kinds = vec![match want {
        Ok((Decision::Applied, _)) => "APPLIED",
        Ok((Decision::Stale, _)) => "STALE",
        Ok((Decision::Unchanged, _)) => "UNCHANGED",
        Err(MergeError::ConflictingContent(_)) => "same stamp, other content",
        Err(MergeError::ClockJump { .. }) => "clock jump refused",
        Err(MergeError::FieldMerged) => "refused: the document holds a patch",
        // Whole-document writes are held to the size limit at the edge.
        Err(MergeError::TooLarge { .. }) => {
            unreachable!("the whole-document merge has no size cap")
        }
    }];
    let (clock, writer) = (
        step.write.stamp.clock.get(),
        step.write.stamp.writer.as_str(),
    );
    if let Some(stored) = stored {
        let (c, w) = (stored.stamp.clock.get(), stored.stamp.writer.as_str());
        if c == clock && w != writer {
            kinds.push("equal clocks, other writers");
        }
        if c == clock && w != writer && w.eq_ignore_ascii_case(writer) {
            kinds.push("equal clocks, writers differing only in case");
        }
        if c == clock
            && w.bytes().any(|b| b.is_ascii_punctuation())
            && writer.bytes().any(|b| b.is_ascii_punctuation())
            && w != writer
        {
            kinds.push("equal clocks, writers with punctuation");
        }
    }
    if clock == MAX {
        kinds.push("clock i64::MAX");
    }
    if clock == 1 {
        kinds.push("clock 1");
    }
    if step.write.value.is_tombstone() {
        kinds.push("tombstone");
    }
    if clock
        > step
            .policy
            .clock_ceiling(settings_sync_protocol::Clock::ZERO)
    {
        kinds.push("clock past the jump limit from zero (update only)");
    }
    kinds
}

/// Runs `steps` on a fresh document of `store` and the pure merge side by
/// side; describes the first difference.
async fn compare<S: DocumentStore>(
    store: &S,
    key: &DocumentKey,
    steps: &[Step],
    tally: &mut BTreeMap<&'static str, usize>,
) -> Result<(), String> {
    let mut pure: Option<Versioned> = None;
    let mut revision: Option<i64> = None;
    for (i, step) in steps.iter().enumerate() {
        let before = pure.clone();
        let want: Answer = merge(pure.as_ref(), &step.write, step.policy).map(|decision| {
            if decision == Decision::Applied {
                pure = Some(step.write.clone());
            }
            (
                decision,
                pure.clone().expect("a merged document has a state"),
            )
        });
        let got: Answer = match store.sync(key, &step.write, step.policy).await {
            Ok(outcome) => Ok((outcome.decision, outcome.document.state)),
            Err(StoreError::Merge(error)) => Err(error),
            Err(other) => return Err(format!("step {i}: the store failed: {other} ({other:?})")),
        };
        for kind in exercised(before.as_ref(), step, &want) {
            *tally.entry(kind).or_default() += 1;
        }
        if got != want {
            return Err(format!(
                "step {i} {step:?}: the store answered {}; the pure merge {}",
                show(&got),
                show(&want)
            ));
        }
        let stored: Option<Document> = store.get(key).await.map_err(|e| e.to_string())?;
        if stored.as_ref().map(|d| &d.state) != pure.as_ref() {
            return Err(format!(
                "step {i} {step:?}: the store holds {:?}, the pure merge {pure:?}",
                stored.map(|d| d.state)
            ));
        }
        let now = stored.map(|d| d.revision);
        let applied = matches!(want, Ok((Decision::Applied, _)));
        if applied != (now != revision) {
            return Err(format!(
                "step {i} {step:?}: revision went from {revision:?} to {now:?} on {want:?}"
            ));
        }
        revision = now;
    }
    Ok(())
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn cases() -> u32 {
    std::env::var("SETTINGS_SYNC_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Runs proptest over `store`; each case on a fresh document. Returns how
/// often each edge was exercised.
fn differences<S: DocumentStore>(
    runtime: &Runtime,
    store: &S,
    cases: u32,
    rng: Option<TestRng>,
) -> Result<BTreeMap<&'static str, usize>, TestError<Vec<Step>>> {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = match rng {
        Some(rng) => TestRunner::new_with_rng(config, rng),
        None => TestRunner::new(config),
    };
    let counter = std::cell::Cell::new(0u64);
    let tally = RefCell::new(BTreeMap::new());
    runner.run(&steps(), |steps| {
        counter.set(counter.get() + 1);
        let key = DocumentKey::parse("diff", &format!("case-{}", counter.get()), "settings")
            .expect("a valid key");
        runtime
            .block_on(compare(store, &key, &steps, &mut tally.borrow_mut()))
            .map_err(TestCaseError::fail)
    })?;
    Ok(tally.into_inner())
}

fn agrees<S: DocumentStore>(name: &str, runtime: &Runtime, store: &S) {
    let (cases, started) = (cases(), Instant::now());
    match differences(runtime, store, cases, None) {
        Ok(tally) => {
            println!(
                "{name}: {cases} sequences agree with the pure merge ({:.1?}); steps that exercised:",
                started.elapsed()
            );
            for (kind, n) in &tally {
                println!("  {n:>5}  {kind}");
            }
            if cases >= 200 {
                let missing: Vec<_> = EDGES.iter().filter(|e| !tally.contains_key(*e)).collect();
                assert!(missing.is_empty(), "{name}: never exercised {missing:?}");
            }
        }
        Err(TestError::Fail(reason, minimal)) => {
            panic!("{name}: {reason}\nminimal sequence: {minimal:#?}")
        }
        Err(other) => panic!("{name}: {other}"),
    }
}

async fn postgres_store() -> PostgresStore {
    let store = PostgresStore::connect_lazy(&postgres::fresh_database().await, 2).expect("a pool");
    store.migrate().await.expect("migrating");
    store
}

#[test]
fn the_postgres_merge_agrees_with_the_pure_merge() {
    let runtime = runtime();
    let store = runtime.block_on(postgres_store());
    agrees("PostgreSQL", &runtime, &store);
}

#[test]
fn the_sqlite_merge_agrees_with_the_pure_merge() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let store = runtime
        .block_on(SqliteStore::open(&url, 2))
        .expect("opening SQLite");
    agrees("SQLite", &runtime, &store);
}

/// The planted bug: the writer column compared under a locale collation
/// instead of bytewise (a migration that forgot `COLLATE "C"`).
#[test]
fn a_writer_column_under_a_locale_collation_is_caught() {
    let runtime = runtime();
    let store = runtime.block_on(postgres_store());
    let collation: String = runtime
        .block_on(
            sqlx::query_scalar(
                "SELECT collname::text FROM pg_collation
                 WHERE collname IN ('und-x-icu', 'en-US-x-icu', 'en_US.utf8', 'en_US')
                 ORDER BY collname DESC LIMIT 1",
            )
            .fetch_optional(store.pool()),
        )
        .expect("reading pg_collation")
        .expect("PostgreSQL has a locale collation (ICU or en_US)");
    let plant =
        format!(r#"ALTER TABLE documents ALTER COLUMN writer TYPE text COLLATE "{collation}""#);
    runtime
        .block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(plant)).execute(store.pool()))
        .expect("planting the collation");
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    match differences(&runtime, &store, 1000, Some(rng)) {
        Err(TestError::Fail(reason, minimal)) => {
            println!(
                "writer COLLATE \"{collation}\" caught: {reason}\nminimal sequence: {minimal:#?}"
            );
            assert!(
                minimal.len() <= 2,
                "shrinking should find a pair, got {minimal:?}"
            );
        }
        other => panic!("a writer column under {collation} went unnoticed: {other:?}"),
    }
}
