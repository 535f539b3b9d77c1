//! The per-field merge through each store against the pure rules: proptest
//! generates sequences of patches, per-field clients' whole documents and
//! whole-document (v1) clients' writes to one fresh document, on the stamp
//! edges of the whole-document test. Every step compares the answer (the
//! decision and every field's, or the error), the registers and the merged
//! state answered, the registers the store then holds, and that the
//! revision moves exactly when the state changes.
//!
//! The pure side: `fields::merge` and `join_write` for a per-field client;
//! for a v1 client, refused on a document that holds a patch, else
//! whole-document `merge`.
//!
//! Planted bugs that must be caught, each through a trigger only its test
//! installs: the store forgets the registers (so every field is judged by
//! the document's stamp), on both stores; and, in PostgreSQL, the store
//! forgets field tombstones.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::json;
use settings_sync::store::{DocumentStore, SqliteStore, StoreError};
use settings_sync_protocol::fields::{self, Change, FieldDocument, FieldOp, FieldWrite, Patch};
use settings_sync_protocol::{
    Clock, Decision, Document, DocumentKey, MergeError, MergePolicy, Stamp, Value, Versioned,
    WriterId, merge,
};
use tokio::runtime::Runtime;

use super::{MAX, WRITERS, cases, postgres_store, runtime, twin};

/// Every edge a run of 200 sequences or more must reach.
const EDGES: &[&str] = &[
    "APPLIED",
    "STALE",
    "UNCHANGED",
    "a patch partly stale",
    "a field tombstone written",
    "a patch to a deleted document",
    "a per-field whole write over a document holding a patch",
    "a v1 write refused: the document holds a patch",
    "a v1 write merged",
    "same stamp, other content",
    "clock jump refused",
    "stored size over the limit refused",
    "an empty patch",
    "equal clocks, other writers",
];

#[derive(Clone, Debug)]
enum Write {
    /// A per-field client's patch or whole document.
    Fields(FieldWrite),
    /// A whole-document (v1) client's write.
    V1(Versioned),
}

impl Write {
    fn stamp(&self) -> &Stamp {
        match self {
            Write::Fields(w) => &w.stamp,
            Write::V1(w) => &w.stamp,
        }
    }
}

#[derive(Clone)]
struct Step {
    write: Write,
    policy: MergePolicy,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.write {
            Write::V1(w) => format!("v1 whole {}", w.value.canonical()),
            Write::Fields(FieldWrite {
                change: Change::Whole(v),
                ..
            }) => format!("per-field whole {}", v.canonical()),
            Write::Fields(FieldWrite {
                change: Change::Patch(p),
                ..
            }) => format!("patch {p:?}"),
        };
        let jump = self.policy.max_clock_jump;
        let size = self.policy.max_stored_bytes;
        write!(
            f,
            "{} {what} (max jump {jump}, max size {size})",
            self.write.stamp()
        )
    }
}

/// What a step's write says, before its stamp is resolved.
#[derive(Clone, Debug)]
enum Body {
    Patch(Vec<(usize, Option<u8>)>),
    FieldsWhole(Option<Vec<(usize, u8)>>),
    V1(Option<Vec<(usize, u8)>>),
}

#[derive(Clone, Debug)]
enum RawStamp {
    Fresh(u64, String),
    Repeat(Index),
    Twin(Index, usize),
}

const NAMES: &[&str] = &["a", "b", "c"];

fn field_value(n: u8) -> serde_json::Value {
    // 3: a JSON null, which is a value, not a delete.
    if n == 3 {
        json!(null)
    } else {
        json!({ "n": n })
    }
}

fn object(fields: &Option<Vec<(usize, u8)>>) -> Value {
    let Some(fields) = fields else {
        return Value::TOMBSTONE;
    };
    let map = (fields.iter())
        .map(|(i, n)| (NAMES[i % NAMES.len()].to_owned(), field_value(*n)))
        .collect();
    Value::object(map)
}

fn change(body: &Body) -> (bool, Change) {
    match body {
        Body::Patch(ops) => {
            let patch: Patch = (ops.iter())
                .map(|(i, n)| {
                    let op = n.map_or(FieldOp::Delete, |n| FieldOp::Set(field_value(n)));
                    (NAMES[i % NAMES.len()].to_owned(), op)
                })
                .collect();
            (false, Change::Patch(patch))
        }
        Body::FieldsWhole(fields) => (false, Change::Whole(object(fields))),
        Body::V1(fields) => (true, Change::Whole(object(fields))),
    }
}

fn stamp(clock: u64, writer: &str) -> Stamp {
    Stamp::new(
        Clock::new(clock).expect("a valid clock"),
        WriterId::parse(writer).expect("a valid writer"),
    )
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let clock = prop_oneof![Just(1u64), Just(2), Just(3), Just(MAX), 1..=8u64, 1..=MAX,];
    let writer = prop::sample::select(WRITERS).prop_map(String::from);
    let raw = prop_oneof![
        3 => (clock, writer).prop_map(|(c, w)| RawStamp::Fresh(c, w)),
        1 => any::<Index>().prop_map(RawStamp::Repeat),
        1 => (any::<Index>(), 0..4usize).prop_map(|(i, how)| RawStamp::Twin(i, how)),
    ];
    let fields = || prop::option::weighted(0.85, prop::collection::vec((0..3usize, 0..4u8), 0..3));
    let body = prop_oneof![
        4 => prop::collection::vec((0..3usize, prop::option::weighted(0.75, 0..4u8)), 0..=3)
            .prop_map(Body::Patch),
        1 => fields().prop_map(Body::FieldsWhole),
        1 => fields().prop_map(Body::V1),
    ];
    let policy = prop_oneof![
        3 => Just(MergePolicy::UNBOUNDED),
        1 => (0..=4u64).prop_map(|max_clock_jump| MergePolicy {
            max_clock_jump,
            ..MergePolicy::UNBOUNDED
        }),
        // Around the stored size of a few fields and tombstones.
        1 => (10..=150usize).prop_map(|max_stored_bytes| MergePolicy {
            max_stored_bytes,
            ..MergePolicy::UNBOUNDED
        }),
    ];
    prop::collection::vec((raw, body, policy), 1..=7).prop_map(|raws| {
        let mut steps: Vec<Step> = Vec::new();
        for (raw, body, policy) in raws {
            let stamp = match raw {
                RawStamp::Fresh(clock, writer) => stamp(clock, &writer),
                _ if steps.is_empty() => stamp(1, "a"),
                RawStamp::Repeat(i) => i.get(&steps).write.stamp().clone(),
                RawStamp::Twin(i, how) => {
                    let s = i.get(&steps).write.stamp();
                    stamp(s.clock.get(), &twin(s.writer.as_str(), how))
                }
            };
            let write = match change(&body) {
                (true, Change::Whole(value)) => Write::V1(Versioned { value, stamp }),
                (_, change) => Write::Fields(FieldWrite { stamp, change }),
            };
            steps.push(Step { write, policy });
        }
        steps
    })
}

/// A step's answer as both sides give it: the decision, every field's
/// (per-field writes only) and the registers answered; or the error.
type Answer = Result<(Decision, BTreeMap<String, Decision>, FieldDocument), MergeError>;

/// The pure merge of `step` into `current`; the answer and the state after.
fn pure(current: &FieldDocument, step: &Step) -> (Answer, FieldDocument) {
    match &step.write {
        Write::Fields(write) => match fields::merge(current, write, step.policy) {
            Ok(report) => {
                let next = current.join_write(write);
                (Ok((report.decision, report.fields, next.clone())), next)
            }
            Err(error) => (Err(error), current.clone()),
        },
        Write::V1(_) if current.holds_patch() => (Err(MergeError::FieldMerged), current.clone()),
        Write::V1(write) => {
            let versioned = current.versioned();
            match merge(versioned.as_ref(), write, step.policy) {
                Ok(decision) => {
                    let next = match decision {
                        Decision::Applied => current.join_write(&FieldWrite {
                            stamp: write.stamp.clone(),
                            change: Change::Whole(write.value.clone()),
                        }),
                        _ => current.clone(),
                    };
                    (Ok((decision, BTreeMap::new(), next.clone())), next)
                }
                Err(error) => (Err(error), current.clone()),
            }
        }
    }
}

/// A document as a store returns it must be one consistent reading of
/// its registers: the merged state, and the registers only while they say
/// more than the state.
fn registers(document: &Document) -> Result<FieldDocument, String> {
    let fields = document.field_document();
    if fields.versioned().as_ref() != Some(&document.state) {
        return Err(format!(
            "registers {fields:?} disagree with {:?}",
            document.state
        ));
    }
    if document.fields.is_some() != fields.holds_patch() {
        return Err(format!("registers listed wrongly: {document:?}"));
    }
    Ok(fields)
}

async fn through_store<S: DocumentStore>(
    store: &S,
    key: &DocumentKey,
    step: &Step,
) -> Result<Answer, String> {
    let failed = |e: StoreError| format!("the store failed: {e} ({e:?})");
    Ok(match &step.write {
        Write::Fields(write) => match store.sync_fields(key, write, step.policy).await {
            Ok(outcome) => {
                let answered = match &outcome.document {
                    Some(document) => registers(document)?,
                    None => FieldDocument::new(),
                };
                Ok((outcome.report.decision, outcome.report.fields, answered))
            }
            Err(StoreError::Merge(error)) => Err(error),
            Err(other) => return Err(failed(other)),
        },
        Write::V1(write) => match store.sync(key, write, step.policy).await {
            Ok(outcome) => Ok((
                outcome.decision,
                BTreeMap::new(),
                registers(&outcome.document)?,
            )),
            Err(StoreError::Merge(error)) => Err(error),
            Err(other) => return Err(failed(other)),
        },
    })
}

fn exercised(before: &FieldDocument, step: &Step, want: &Answer) -> Vec<&'static str> {
    let mut kinds = vec![match want {
        Ok((Decision::Applied, ..)) => "APPLIED",
        Ok((Decision::Stale, ..)) => "STALE",
        Ok((Decision::Unchanged, ..)) => "UNCHANGED",
        Err(MergeError::ConflictingContent(_)) => "same stamp, other content",
        Err(MergeError::ClockJump { .. }) => "clock jump refused",
        Err(MergeError::TooLarge { .. }) => "stored size over the limit refused",
        Err(MergeError::FieldMerged) => "a v1 write refused: the document holds a patch",
    }];
    if let Ok((_, fields, _)) = want {
        let has = |d: Decision| fields.values().any(|x| *x == d);
        if has(Decision::Applied) && has(Decision::Stale) {
            kinds.push("a patch partly stale");
        }
    }
    match &step.write {
        Write::V1(_) if want.is_ok() => kinds.push("a v1 write merged"),
        Write::Fields(FieldWrite {
            change: Change::Whole(_),
            ..
        }) if before.holds_patch() => {
            kinds.push("a per-field whole write over a document holding a patch")
        }
        Write::Fields(FieldWrite {
            change: Change::Patch(patch),
            ..
        }) => {
            if patch.is_empty() {
                kinds.push("an empty patch");
            }
            if patch.values().any(|op| *op == FieldOp::Delete) && want.is_ok() {
                kinds.push("a field tombstone written");
            }
            if before.floor().is_some_and(|f| f.deleted) && before.value().is_tombstone() {
                kinds.push("a patch to a deleted document");
            }
        }
        _ => {}
    }
    if let Some(s) = before.stamp()
        && s.clock == step.write.stamp().clock
        && s.writer != step.write.stamp().writer
    {
        kinds.push("equal clocks, other writers");
    }
    kinds
}

/// Runs `steps` on a fresh document of `store` and the pure rules side by
/// side; describes the first difference.
async fn compare<S: DocumentStore>(
    store: &S,
    key: &DocumentKey,
    steps: &[Step],
    tally: &mut BTreeMap<&'static str, usize>,
) -> Result<(), String> {
    let mut state = FieldDocument::new();
    let mut revision: Option<i64> = None;
    for (i, step) in steps.iter().enumerate() {
        let (want, next) = pure(&state, step);
        let got = through_store(store, key, step)
            .await
            .map_err(|e| format!("step {i} {step:?}: {e}"))?;
        for kind in exercised(&state, step, &want) {
            *tally.entry(kind).or_default() += 1;
        }
        if got != want {
            return Err(format!(
                "step {i} {step:?}: the store answered {got:?}; the pure rules {want:?}"
            ));
        }
        let stored = (store.get(key).await).map_err(|e| format!("step {i}: get: {e} ({e:?})"))?;
        let held = match &stored {
            Some(document) => registers(document).map_err(|e| format!("step {i}: {e}"))?,
            None => FieldDocument::new(),
        };
        if held != next {
            return Err(format!(
                "step {i} {step:?}: the store holds {held:?}, the pure rules {next:?}"
            ));
        }
        let now = stored.map(|d| d.revision);
        if (next != state) != (now != revision) {
            return Err(format!(
                "step {i} {step:?}: revision went from {revision:?} to {now:?}, state changed: {}",
                next != state
            ));
        }
        (state, revision) = (next, now);
    }
    Ok(())
}

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
        let key = DocumentKey::parse("fields", &format!("case-{}", counter.get()), "settings")
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
                "{name}: {cases} per-field sequences agree with the pure rules ({:.1?}); steps that exercised:",
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

/// Runs the comparison with a fixed seed over a store with a planted bug;
/// it must fail, and shrink to a short sequence.
fn caught<S: DocumentStore>(name: &str, runtime: &Runtime, store: &S) {
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    match differences(runtime, store, 1000, Some(rng)) {
        Err(TestError::Fail(reason, minimal)) => {
            println!("{name} caught: {reason}\nminimal sequence: {minimal:#?}");
            assert!(
                minimal.len() <= 3,
                "shrinking should find a short sequence, got {minimal:?}"
            );
        }
        other => panic!("{name} went unnoticed: {other:?}"),
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    SqliteStore::open(&url, 2).await.expect("opening SQLite")
}

#[test]
fn the_postgres_per_field_merge_agrees_with_the_pure_rules() {
    let runtime = runtime();
    let store = runtime.block_on(postgres_store());
    agrees("PostgreSQL", &runtime, &store);
}

#[test]
fn the_sqlite_per_field_merge_agrees_with_the_pure_rules() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a directory");
    let store = runtime.block_on(sqlite_store(&dir));
    agrees("SQLite", &runtime, &store);
}

/// Planted: every written row loses its registers, as a store that kept
/// only the document's stamp would (every field then judged by it).
#[test]
fn a_postgres_store_that_forgets_the_registers_is_caught() {
    let runtime = runtime();
    let store = runtime.block_on(postgres_store());
    let plant = "CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN NEW.field_stamps := NULL; RETURN NEW; END $$;
                 CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON documents
                     FOR EACH ROW EXECUTE FUNCTION planted();";
    runtime
        .block_on(sqlx::raw_sql(plant).execute(store.pool()))
        .expect("planting");
    caught("PostgreSQL forgetting the registers", &runtime, &store);
}

#[test]
fn a_sqlite_store_that_forgets_the_registers_is_caught() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a directory");
    let store = runtime.block_on(sqlite_store(&dir));
    let plant = "CREATE TRIGGER planted AFTER UPDATE ON documents
                 WHEN NEW.field_stamps IS NOT NULL BEGIN
                     UPDATE documents SET field_stamps = NULL
                     WHERE (tenant, owner, name) = (NEW.tenant, NEW.owner, NEW.name);
                 END;
                 CREATE TRIGGER planted_insert AFTER INSERT ON documents
                 WHEN NEW.field_stamps IS NOT NULL BEGIN
                     UPDATE documents SET field_stamps = NULL
                     WHERE (tenant, owner, name) = (NEW.tenant, NEW.owner, NEW.name);
                 END;";
    runtime
        .block_on(sqlx::raw_sql(plant).execute(store.pool()))
        .expect("planting");
    caught("SQLite forgetting the registers", &runtime, &store);
}

/// Planted: field tombstones dropped from the registers on every write, as
/// a store that deleted a field by removing its key would (and, with no
/// register left above the floor, stored the document as whole).
#[test]
fn a_postgres_store_that_forgets_field_tombstones_is_caught() {
    let runtime = runtime();
    let store = runtime.block_on(postgres_store());
    let plant = "CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$
                 DECLARE floor jsonb;
                 BEGIN
                     IF NEW.field_stamps IS NULL THEN RETURN NEW; END IF;
                     NEW.field_stamps := jsonb_set(NEW.field_stamps, '{fields}', (
                         SELECT coalesce(jsonb_object_agg(k, v), '{}')
                         FROM jsonb_each(NEW.field_stamps->'fields') AS e(k, v)
                         WHERE NEW.value IS NOT NULL AND NEW.value ? k));
                     floor := NEW.field_stamps->'floor';
                     IF NOT EXISTS (SELECT 1 FROM jsonb_each(NEW.field_stamps->'fields') AS e(k, v)
                                    WHERE floor = 'null' OR v->0 <> floor->0 OR v->1 <> floor->1) THEN
                         NEW.field_stamps := NULL;
                     END IF;
                     RETURN NEW;
                 END $$;
                 CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON documents
                     FOR EACH ROW EXECUTE FUNCTION planted();";
    runtime
        .block_on(sqlx::raw_sql(plant).execute(store.pool()))
        .expect("planting");
    caught("PostgreSQL forgetting field tombstones", &runtime, &store);
}
