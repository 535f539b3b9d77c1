//! The batcher against a real PostgreSQL: concurrent Syncs grouped into
//! one statement answer every caller as the pure merge would in some
//! sequential order, and end on the pure fold.
//!
//! These run as unit tests so that the planted pre-merge (the last
//! submitted write wins) exists only under `cfg(test)` and can not reach
//! any binary; `tests/batching.rs` covers the batcher through the public
//! store. The suites run on a current-thread runtime: `join_all` hands
//! every write of a round to the batcher before its task runs, so a round
//! is exactly one batch (several writes to one document included).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use settings_sync_protocol::merge::join;
use settings_sync_protocol::{
    Clock, Decision, DocumentKey, MergePolicy, Stamp, Value, Versioned, WriterId, merge,
};
use sqlx::Connection;
use tracing_subscriber::fmt::MakeWriter;

use settings_sync_protocol::fields::{self, Change, FieldDocument, FieldOp, FieldWrite, Patch};
use settings_sync_protocol::overrides;

use super::{BatchConfig, Batches, FieldAnswers, PreMerge, Statements, unanswered_if_dropped};
use crate::store::StoreError;

type Answer = Result<(Decision, Versioned), StoreError>;

const POLICY: MergePolicy = MergePolicy {
    max_clock_jump: 3,
    ..MergePolicy::UNBOUNDED
};

/// A fresh database in the cluster `scripts/postgres.sh` started.
async fn fresh_database() -> String {
    let var = "SETTINGS_SYNC_TEST_DATABASE_URL";
    let admin = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test.sh, which starts PostgreSQL")
    });
    let name = format!("unit_{:016x}", rand::rng().random::<u64>());
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connecting to the test cluster");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("creating a test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the admin URL names a database");
    format!("{base}/{name}")
}

const CONFIG: BatchConfig = BatchConfig {
    max: 64,
    in_flight: 2,
    window: std::time::Duration::ZERO,
    gets: true,
};

async fn statements() -> Statements {
    let sql = Statements::connect_lazy(&fresh_database().await, 8).expect("a pool");
    sql.migrate().await.expect("migrations apply");
    sql
}

async fn batches(rule: PreMerge) -> Batches {
    Batches::start_with_rule(statements().await, CONFIG, rule)
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

fn write(clock: u64, writer: &str, json: serde_json::Value) -> Versioned {
    Versioned {
        value: Value::from_json(json).expect("an object or null"),
        stamp: Stamp::new(
            Clock::new(clock).expect("a valid clock"),
            WriterId::parse(writer).expect("a valid writer"),
        ),
    }
}

/// A random write: few clocks and writers, so equal clocks and equal
/// stamps are common; sometimes other content for a stamp (a broken
/// client), sometimes a tombstone; clocks up to 8 against a jump limit of
/// 3, so some writes may only update and some jump too far.
fn random_write(rng: &mut StdRng) -> Versioned {
    let clock = rng.random_range(0..=8u64);
    let writer = ["a", "b", "c"][rng.random_range(0..3)];
    if rng.random_bool(0.12) {
        return write(clock, writer, serde_json::Value::Null);
    }
    let odd = rng.random_bool(0.1);
    write(
        clock,
        writer,
        serde_json::json!({"clock": clock, "writer": writer, "odd": odd}),
    )
}

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
async fn random_rounds(batches: &Batches, seed: u64, rounds: usize) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<DocumentKey, Option<Versioned>> = BTreeMap::new();
    let mut acked: BTreeMap<DocumentKey, BTreeSet<Stamp>> = BTreeMap::new();
    let mut applied_total = 0;
    for round in 0..rounds {
        let writes: Vec<(DocumentKey, Versioned)> = (0..rng.random_range(2..=16))
            .map(|_| (doc_key(rng.random_range(0..4)), random_write(&mut rng)))
            .collect();
        let answers = futures::future::join_all(writes.iter().map(|(key, w)| async move {
            batches
                .sync(key, w, POLICY)
                .await
                .map(|o| (o.decision, o.document.state))
        }))
        .await;
        let mut by_key: BTreeMap<DocumentKey, Vec<(Versioned, Answer)>> = BTreeMap::new();
        for ((key, w), answer) in writes.into_iter().zip(answers) {
            applied_total += usize::from(matches!(answer, Ok((Decision::Applied, _))));
            if answer.is_ok() {
                acked
                    .entry(key.clone())
                    .or_default()
                    .insert(w.stamp.clone());
            }
            by_key.entry(key).or_default().push((w, answer));
        }
        for (key, answers) in by_key {
            let before = model.get(&key).cloned().flatten();
            let after = check_document(before, &answers).map_err(|e| {
                let sent: Vec<String> = answers.iter().map(|(w, a)| describe(w, a)).collect();
                format!("seed {seed}, round {round}, {key}: {e}\n  batch: {sent:#?}")
            })?;
            let stored = batches.get(&key).await.map_err(|e| e.to_string())?;
            if stored.as_ref().map(|d| &d.state) != after.as_ref() {
                return Err(format!(
                    "round {round}, {key}: stored {stored:?}, expected {after:?}"
                ));
            }
            model.insert(key, after);
        }
    }
    check_change_log(batches, applied_total).await?;
    check_every_loser_recorded_once(batches, &model, &acked).await
}

/// The override log as (key, field, losing stamp) → (value, winner, kind).
type Log = BTreeMap<(DocumentKey, String, Stamp), (Option<serde_json::Value>, Stamp, String)>;

async fn override_log(batches: &Batches) -> Result<Log, String> {
    type LogRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        String,
        i64,
        String,
        String,
    );
    let rows: Vec<LogRow> = sqlx::query_as(
        "SELECT tenant, owner, name, field, lost_value::text, lost_clock, lost_writer,
                winner_clock, winner_writer, kind FROM overrides",
    )
    .fetch_all(batches.shared.sql.pool())
    .await
    .map_err(|e| e.to_string())?;
    let stamp = |c: i64, w: String| {
        Stamp::new(
            Clock::new(c as u64).expect("a stored clock"),
            WriterId::parse(w).expect("a stored writer"),
        )
    };
    let mut log = Log::new();
    for (t, o, n, field, value, lc, lw, wc, ww, kind) in rows {
        let key = DocumentKey::parse(&t, &o, &n).map_err(|e| e.to_string())?;
        let value = value.map(|v| serde_json::from_str(&v).expect("stored JSON"));
        log.insert((key, field, stamp(lc, lw)), (value, stamp(wc, ww), kind));
    }
    Ok(log)
}

/// P5 made observable: every acknowledged write of a document that is not
/// its final state is in the override log, exactly once (the log is keyed
/// by losing stamp), lost to a larger stamp; and nothing else is.
async fn check_every_loser_recorded_once(
    batches: &Batches,
    model: &BTreeMap<DocumentKey, Option<Versioned>>,
    acked: &BTreeMap<DocumentKey, BTreeSet<Stamp>>,
) -> Result<(), String> {
    let log = override_log(batches).await?;
    for ((key, field, lost), (_, winner, kind)) in &log {
        if !field.is_empty() || winner <= lost {
            return Err(format!(
                "{key}: a record {field:?} {lost} {kind} lost to {winner}"
            ));
        }
    }
    for (key, stamps) in acked {
        let last = model.get(key).cloned().flatten().map(|v| v.stamp);
        let want: BTreeSet<&Stamp> = stamps
            .iter()
            .filter(|s| Some(*s) != last.as_ref())
            .collect();
        let got: BTreeSet<&Stamp> = (log.keys())
            .filter(|(k, _, _)| k == key)
            .map(|(_, _, s)| s)
            .collect();
        if want != got {
            let missing: Vec<String> = want.difference(&got).map(|s| s.to_string()).collect();
            let extra: Vec<String> = got.difference(&want).map(|s| s.to_string()).collect();
            return Err(format!(
                "{key}: acknowledged losers not in the override log: {missing:?}; \
                 recorded but not acknowledged losers: {extra:?}"
            ));
        }
    }
    Ok(())
}

/// One change row per APPLIED write, each with its own revision, and each
/// document's revision is its newest change.
async fn check_change_log(batches: &Batches, applied: usize) -> Result<(), String> {
    let (changes, stale_revisions): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM changes),
                (SELECT count(*) FROM documents d WHERE d.revision <>
                    (SELECT max(revision) FROM changes c
                     WHERE (c.tenant, c.owner, c.name) = (d.tenant, d.owner, d.name)))",
    )
    .fetch_one(batches.shared.sql.pool())
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
        let batches = batches(PreMerge::LargestStamp).await;
        random_rounds(&batches, seed, 60).await.unwrap();
        let counts = batches.counts();
        assert!(
            counts.sync_statements > 0 && counts.sync_writes > counts.sync_statements,
            "the rounds went through the batched statement: {counts:?}"
        );
        assert_eq!(counts.sync_fallbacks, 0, "no batch fell back: {counts:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_where_the_last_submitted_write_wins_is_caught() {
    let mut caught = None;
    for seed in 0..4 {
        let batches = batches(PreMerge::PlantedLastSubmittedWins).await;
        if let Err(e) = random_rounds(&batches, seed, 60).await {
            caught = Some(e);
            break;
        }
    }
    let caught = caught.expect("the planted pre-merge must fail the check");
    println!("caught: {caught}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_that_does_not_record_a_pre_merged_write_is_caught() {
    let mut caught = None;
    for seed in 0..4 {
        let batches = batches(PreMerge::PlantedPreMergedNotRecorded).await;
        if let Err(e) = random_rounds(&batches, seed, 60).await {
            caught = Some(e);
            break;
        }
    }
    let caught = caught.expect("the planted batch must fail the override check");
    assert!(caught.contains("not in the override log"), "{caught}");
    println!("caught: {caught}");
}

/// A random per-field write over fields a, b, c: mostly patches, sometimes
/// a whole document; few clocks and writers, so stamps collide and some
/// carry other content (refused); clocks up to 8 against a jump limit of 3.
fn random_field_write(rng: &mut StdRng) -> FieldWrite {
    let clock = rng.random_range(1..=8u64);
    let writer = ["a", "b", "c"][rng.random_range(0..3)];
    let stamp = write(clock, writer, serde_json::json!({})).stamp;
    let odd = rng.random_bool(0.1);
    let value = serde_json::json!({"clock": clock, "writer": writer, "odd": odd});
    let mut ops = Patch::new();
    for name in ["a", "b", "c"] {
        if rng.random_bool(0.5) {
            let op = if rng.random_bool(0.2) {
                FieldOp::Delete
            } else {
                FieldOp::Set(value.clone())
            };
            ops.insert(name.to_owned(), op);
        }
    }
    let change = if rng.random_bool(0.2) {
        let set = (ops.into_iter()).filter_map(|(n, op)| Some((n, op.value()?.clone())));
        Change::Whole(Value::object(set.collect()))
    } else {
        Change::Patch(ops)
    };
    FieldWrite { stamp, change }
}

type FieldAnswer = Result<(fields::FieldReport, FieldDocument), StoreError>;

/// Rounds of random batches of per-field writes over a few documents.
/// The statement merges one document's writes in the order of the batch,
/// so each caller must get exactly what the pure merge says in that order,
/// and each document must end on that state.
async fn random_field_rounds(batches: &Batches, seed: u64, rounds: usize) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<DocumentKey, FieldDocument> = BTreeMap::new();
    let mut expected = Log::new();
    let mut changes = 0;
    for round in 0..rounds {
        let writes: Vec<(DocumentKey, FieldWrite)> = (0..rng.random_range(2..=12))
            .map(|_| {
                (
                    doc_key(rng.random_range(0..3)),
                    random_field_write(&mut rng),
                )
            })
            .collect();
        let answers = futures::future::join_all(writes.iter().map(|(key, w)| async move {
            let outcome = batches.sync_fields(key, w, POLICY).await?;
            let document = outcome.document.map(|d| d.field_document());
            Ok((outcome.report, document.unwrap_or_default()))
        }))
        .await;
        for ((key, w), got) in writes.iter().zip(answers) {
            let got: FieldAnswer = got;
            let state = model.entry(key.clone()).or_default();
            let want = fields::merge(state, w, POLICY).map(|report| {
                let next = state.join_write(w);
                changes += usize::from(next != *state);
                for lost in overrides::of_field_write(state, &next, w, &report) {
                    let field = lost.field.clone().unwrap_or_default();
                    let value = lost.value.map(|v| serde_json::from_str(&v).expect("JSON"));
                    expected.entry((key.clone(), field, lost.stamp)).or_insert((
                        value,
                        lost.winner,
                        lost.kind.as_str().to_owned(),
                    ));
                }
                *state = next;
                (report, state.clone())
            });
            let same = match (&got, &want) {
                (Ok(got), Ok(want)) => got == want,
                (Err(StoreError::Merge(got)), Err(want)) => got == want,
                _ => false,
            };
            if !same {
                return Err(format!(
                    "seed {seed}, round {round}, {key}: {w:?} answered {got:?}, \
                     the pure merge in the batch's order {want:?}"
                ));
            }
        }
        for (key, want) in &model {
            let stored = batches.get(key).await.map_err(|e| e.to_string())?;
            let stored = stored.map(|d| d.field_document()).unwrap_or_default();
            if stored != *want {
                return Err(format!(
                    "round {round}, {key}: stored {stored:?}, expected {want:?}"
                ));
            }
        }
        // The override log, exactly as the pure rule in the batch's order.
        let log = override_log(batches).await?;
        if log != expected {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| log.get(k) != Some(v))
                .collect();
            let extra: Vec<_> = log
                .iter()
                .filter(|(k, v)| expected.get(k) != Some(v))
                .collect();
            return Err(format!(
                "seed {seed}, round {round}: override log differs from the pure rule; \
                 expected, not recorded: {missing:?}; recorded, not expected: {extra:?}"
            ));
        }
    }
    check_change_log(batches, changes).await
}

#[tokio::test(flavor = "current_thread")]
async fn batched_per_field_writes_get_the_pure_decisions_in_the_batch_order() {
    for seed in 0..3 {
        let batches = batches(PreMerge::LargestStamp).await;
        random_field_rounds(&batches, seed, 40).await.unwrap();
        let counts = batches.counts();
        assert!(
            counts.field_statements > 0 && counts.field_writes > counts.field_statements,
            "the rounds went through the combined statement: {counts:?}"
        );
        assert_eq!(counts.field_fallbacks, 0, "no batch fell back: {counts:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_handing_out_per_field_answers_in_reverse_is_caught() {
    let mut caught = None;
    for seed in 0..3 {
        let batches = Batches::start_with_field_answers(
            statements().await,
            CONFIG,
            FieldAnswers::PlantedReversed,
        );
        if let Err(e) = random_field_rounds(&batches, seed, 40).await {
            caught = Some(e);
            break;
        }
    }
    let caught = caught.expect("answers handed to the wrong callers must fail the check");
    println!("caught: {caught}");
}

#[test]
fn a_reply_dropped_unanswered_is_an_internal_error_not_an_unsettled_merge() {
    let (reply, answer) = tokio::sync::oneshot::channel::<Result<Option<()>, StoreError>>();
    drop(reply);
    let error = unanswered_if_dropped(answer.blocking_recv()).expect_err("no answer");
    assert!(matches!(error, StoreError::Internal(_)), "{error:?}");
    let chain = crate::telemetry::error_chain(&error);
    assert!(!chain.contains("settle"), "{chain}");
    assert!(chain.contains("ended without answering"), "{chain}");
}

/// Every line a test's scoped `fmt` subscriber writes, kept for asserts.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> CapturedLog {
        self.clone()
    }
}

impl CapturedLog {
    /// Captures what this thread logs (INFO and up) until the guard drops.
    /// The tests using it run on a current-thread runtime, so the batch
    /// tasks log on this thread too.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The lines this crate logged at `level` (e.g. "WARN").
    fn lines(&self, level: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains(&format!(" {level} settings_sync::")))
            .map(str::to_owned)
            .collect()
    }
}

/// The test-only seam `tests/batching.rs` plants its deadlock with: in this
/// test's own database, a trigger fails every combined (`unnest`) statement
/// as a deadlock would (SQLSTATE 40P01); single statements still pass.
async fn plant_deadlock(batches: &Batches) {
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
    .execute(batches.shared.sql.pool())
    .await
    .expect("planting the deadlock");
}

/// One round of concurrent first writes to `keys`: on a current-thread
/// runtime, exactly one batch. Each must be APPLIED.
async fn write_once(batches: &Batches, keys: &[DocumentKey]) {
    let w = write(1, "a", serde_json::json!({"n": 1}));
    let answers = futures::future::join_all(keys.iter().map(|k| batches.sync(k, &w, POLICY))).await;
    for (key, answer) in keys.iter().zip(answers) {
        let outcome = answer.unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(outcome.decision, Decision::Applied, "{key}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_that_falls_back_logs_one_warning_naming_its_cause_and_is_counted() {
    let log = CapturedLog::default();
    let _scoped = log.install();
    let batches = batches(PreMerge::LargestStamp).await;

    // Control: a batch whose combined statement succeeds logs no warning.
    write_once(&batches, &(0..4).map(doc_key).collect::<Vec<_>>()).await;
    let counts = batches.counts();
    assert_eq!((counts.sync_statements, counts.sync_fallbacks), (1, 0));
    assert_eq!(log.lines("WARN"), Vec::<String>::new());

    // The combined statement now fails; each write still succeeds alone.
    plant_deadlock(&batches).await;
    write_once(&batches, &(4..9).map(doc_key).collect::<Vec<_>>()).await;
    let counts = batches.counts();
    assert_eq!(
        (counts.sync_statements, counts.sync_fallbacks),
        (1, 1),
        "one more fallback, no more combined statements: {counts:?}"
    );
    let warnings = log.lines("WARN");
    assert_eq!(
        warnings.len(),
        1,
        "one WARN line per fallback: {warnings:#?}"
    );
    let line = &warnings[0];
    println!("captured: {line}");
    for part in [
        "a combined statement failed; running each request of the batch alone",
        "kind=\"sync\"",
        "requests=5",
        "cause=\"conflict\"",
        "planted deadlock",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    assert_eq!(log.lines("ERROR"), Vec::<String>::new());
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_of_gets_that_falls_back_logs_one_warning_naming_its_cause_and_is_counted() {
    let log = CapturedLog::default();
    let _scoped = log.install();
    // Nothing listens on port 1: the combined read fails, and so does each
    // read alone, each with its own error.
    let sql = Statements::connect_lazy("postgres://postgres@127.0.0.1:1/none", 2).expect("a pool");
    let batches = Batches::start_with_rule(sql, BatchConfig::default(), PreMerge::LargestStamp);
    let keys: Vec<DocumentKey> = (0..3).map(doc_key).collect();
    let answers = futures::future::join_all(keys.iter().map(|k| batches.get(k))).await;
    for (key, answer) in keys.iter().zip(answers) {
        let error = answer.expect_err("no database");
        assert!(
            matches!(error, StoreError::Unavailable(_)),
            "{key}: {error:?}"
        );
    }
    let counts = batches.counts();
    assert_eq!(
        (counts.get_statements, counts.get_fallbacks),
        (0, 1),
        "{counts:?}"
    );
    let warnings = log.lines("WARN");
    assert_eq!(
        warnings.len(),
        1,
        "one WARN line per fallback: {warnings:#?}"
    );
    println!("captured: {}", warnings[0]);
    for part in ["kind=\"get\"", "requests=3", "cause=\"unavailable\""] {
        assert!(
            warnings[0].contains(part),
            "{part:?} missing from {}",
            warnings[0]
        );
    }
}
