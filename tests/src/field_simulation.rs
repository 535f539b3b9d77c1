//! The convergence property test in the opt-in per-field mode: 2 or 3
//! per-field browsers ([`crate::field_browsers`]) edit fields `a`, `b`, `c`
//! of one document, by patches and by whole-document writes (deletes too),
//! over a network that loses, holds back, delays (so reorders) and
//! duplicates requests, with page reloads; then the delayed requests
//! arrive, two clean sync rounds run, and the held replies arrive.
//!
//! One call at a time, so every answer is the backend's state right after
//! that call. The test keeps every write the backend received (all
//! replicas share one database), and checks:
//!
//! - **Join**: after every call the backend holds exactly the join of the
//!   writes it received (nothing invented, lost or re-stamped);
//! - **Decisions**: each field's decision matches the state answered with
//!   it (`APPLIED`: the field holds the write's stamp; `STALE`: a larger
//!   one; `UNCHANGED`: the same), every field of a patch is decided;
//! - **No field regression** on screen: a field a browser shows never goes
//!   back to an older register (a reload starts a new incarnation);
//! - at the end, **convergence**: every replica reads one state and every
//!   browser shows it, register for register; **largest stamp wins**: each
//!   field holds the value of the largest-stamped received write that
//!   speaks of it; **applied kept**: a field answered `APPLIED` holds that
//!   write, or lost it to a write *of that same field* with a larger stamp
//!   (concurrent edits of different fields both survive);
//! - no call fails.

use std::cell::RefCell;
use std::fmt;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRng, TestRunner};
use rand::Rng;
use settings_sync_client::{Client, Error};
use settings_sync_protocol::fields::{Change, FieldDocument, FieldOp, FieldWrite, Patch};
use settings_sync_protocol::{Decision, Document, DocumentKey, Stamp, Value};
use tokio::runtime::Runtime;

use crate::field_browsers::{FieldBrowser, FieldVariant};

pub const FIELDS: [&str; 3] = ["a", "b", "c"];

/// What becomes of a request (and its reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    /// Reaches the backend; the reply never reaches the page.
    Lost,
    /// Reaches the backend; the reply reaches the page at a later step.
    Held,
    /// Reaches the backend at a later step (any order); its reply reaches
    /// the page unless the page has reloaded.
    Delayed,
    /// Reaches the backend twice (the second time at the next replica);
    /// the second reply is delivered.
    Duplicated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldAction {
    /// Edits the fields in `fields` (bit i: `FIELDS[i]`), deleting those
    /// also in `deletes`; `send`: a sync follows, with that fate.
    Patch {
        fields: u8,
        deletes: u8,
        send: Option<Fate>,
    },
    /// Writes the whole document: those fields set, or (`delete`) a
    /// tombstone.
    Whole {
        fields: u8,
        delete: bool,
        send: Option<Fate>,
    },
    /// Sends every unconfirmed write, or reads.
    Sync(Fate),
    DeliverHeld {
        nth: usize,
    },
    Reset,
    Arrives {
        nth: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldStep {
    pub browser: usize,
    pub replica: usize,
    pub action: FieldAction,
}

#[derive(Clone, PartialEq, Eq)]
pub struct FieldCase {
    pub browsers: usize,
    pub steps: Vec<FieldStep>,
}

impl fmt::Debug for FieldCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} browsers, {} steps:", self.browsers, self.steps.len())?;
        for (i, s) in self.steps.iter().enumerate() {
            let b = s.browser % self.browsers;
            writeln!(
                f,
                "  {:>2}. browser {b} (replica {}): {:?}",
                i + 1,
                s.replica,
                s.action
            )?;
        }
        write!(
            f,
            "  then delayed requests arrive, two clean sync rounds, held replies arrive last"
        )
    }
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Delivered),
        1 => Just(Fate::Lost),
        2 => Just(Fate::Held),
        2 => Just(Fate::Delayed),
        1 => Just(Fate::Duplicated),
    ]
}

fn action() -> impl Strategy<Value = FieldAction> {
    prop_oneof![
        8 => (1..8u8, prop_oneof![5 => Just(0u8), 1 => 1..8u8], prop::option::weighted(0.7, fate()))
            .prop_map(|(fields, deletes, send)| FieldAction::Patch { fields, deletes: deletes & fields, send }),
        2 => (0..8u8, prop::bool::weighted(0.2), prop::option::weighted(0.7, fate()))
            .prop_map(|(fields, delete, send)| FieldAction::Whole { fields, delete, send }),
        3 => fate().prop_map(FieldAction::Sync),
        2 => (0..4usize).prop_map(|nth| FieldAction::DeliverHeld { nth }),
        1 => Just(FieldAction::Reset),
        2 => (0..4usize).prop_map(|nth| FieldAction::Arrives { nth }),
    ]
}

pub fn cases() -> impl Strategy<Value = FieldCase> {
    (
        2..=3usize,
        prop::collection::vec((0..3usize, 0..3usize, action()), 1..=14),
    )
        .prop_map(|(browsers, steps)| FieldCase {
            browsers,
            steps: (steps.into_iter())
                .map(|(browser, replica, action)| FieldStep {
                    browser,
                    replica,
                    action,
                })
                .collect(),
        })
}

/// Which property a run broke, and how.
#[derive(Debug)]
pub struct FieldViolation {
    pub property: &'static str,
    pub detail: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}

fn violation(property: &'static str, detail: String) -> FieldViolation {
    FieldViolation { property, detail }
}

/// Counts over the cases of one check.
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldTotals {
    pub cases: usize,
    pub steps: usize,
    pub writes: usize,
    pub applied_fields: usize,
    pub stale_fields: usize,
}

struct InFlight {
    browser: usize,
    incarnation: u32,
    sender: String,
    write: FieldWrite,
}

struct Run<'a> {
    key: DocumentKey,
    clients: &'a [Client],
    browsers: Vec<FieldBrowser>,
    network: Vec<InFlight>,
    /// Every write the backend received (not refused), in arrival order.
    received: Vec<FieldWrite>,
    /// Every (write, field) answered APPLIED.
    applied: Vec<(FieldWrite, String)>,
    edits: u32,
    totals: FieldTotals,
    story: Vec<String>,
}

/// Runs `case` on a fresh document `key`.
pub async fn run(
    case: &FieldCase,
    variant: FieldVariant,
    clients: &[Client],
    key: DocumentKey,
) -> Result<FieldTotals, (FieldViolation, Vec<String>)> {
    let mut run = Run {
        browsers: (0..case.browsers)
            .map(|i| FieldBrowser::new(variant, key.clone(), i))
            .collect(),
        key,
        clients,
        network: Vec::new(),
        received: Vec::new(),
        applied: Vec::new(),
        edits: 0,
        totals: FieldTotals::default(),
        story: Vec::new(),
    };
    match run.all(case).await {
        Ok(()) => Ok(FieldTotals {
            cases: 1,
            steps: case.steps.len(),
            ..run.totals
        }),
        Err(v) => Err((v, run.story)),
    }
}

fn describe(write: &FieldWrite) -> String {
    let what = match &write.change {
        Change::Patch(patch) => (patch.iter())
            .map(|(name, op)| match op {
                FieldOp::Set(v) => format!("{name}={v}"),
                FieldOp::Delete => format!("{name} deleted"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Change::Whole(value) => format!("whole {}", value.canonical()),
    };
    format!("[{what}] at {}", write.stamp)
}

fn show(document: &FieldDocument) -> String {
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|f| match (document.value_of(f), document.stamp_of(f)) {
            (Some(v), Some(s)) => format!("{f}={v}@{s}"),
            (None, Some(s)) => format!("{f}-@{s}"),
            (_, None) => format!("{f}-"),
        })
        .collect();
    fields.join(" ")
}

fn speaks_of(write: &FieldWrite, field: &str) -> bool {
    match &write.change {
        Change::Patch(patch) => patch.contains_key(field),
        Change::Whole(_) => true,
    }
}

impl Run<'_> {
    async fn all(&mut self, case: &FieldCase) -> Result<(), FieldViolation> {
        for step in &case.steps {
            let b = step.browser % case.browsers;
            let r = step.replica % self.clients.len();
            match step.action {
                FieldAction::Patch {
                    fields,
                    deletes,
                    send,
                } => {
                    let patch: Patch = (0..FIELDS.len())
                        .filter(|i| fields & (1 << i) != 0)
                        .map(|i| {
                            let op = if deletes & (1 << i) != 0 {
                                FieldOp::Delete
                            } else {
                                FieldOp::Set(self.next_value())
                            };
                            (FIELDS[i].to_owned(), op)
                        })
                        .collect();
                    self.edit(b, Change::Patch(patch));
                    if let Some(fate) = send {
                        self.send(b, r, fate).await?;
                    }
                }
                FieldAction::Whole {
                    fields,
                    delete,
                    send,
                } => {
                    let value = if delete {
                        Value::TOMBSTONE
                    } else {
                        Value::object(
                            (0..FIELDS.len())
                                .filter(|i| fields & (1 << i) != 0)
                                .map(|i| (FIELDS[i].to_owned(), self.next_value()))
                                .collect(),
                        )
                    };
                    self.edit(b, Change::Whole(value));
                    if let Some(fate) = send {
                        self.send(b, r, fate).await?;
                    }
                }
                FieldAction::Sync(fate) => self.send(b, r, fate).await?,
                FieldAction::DeliverHeld { nth } => self.deliver_held(b, nth)?,
                FieldAction::Reset => {
                    let old = self.browsers[b].name();
                    self.browsers[b].reset();
                    self.story
                        .push(format!("{old} reloads: now {}", self.browsers[b].name()));
                }
                FieldAction::Arrives { nth } => self.arrive(nth, r).await?,
            }
        }
        if !self.network.is_empty() {
            self.story.push("-- the delayed requests arrive".into());
        }
        while !self.network.is_empty() {
            self.arrive(0, 0).await?;
        }
        self.story.push("-- two clean sync rounds".into());
        for round in 0..2 {
            for b in 0..case.browsers {
                let r = (round * case.browsers + b) % self.clients.len();
                self.send(b, r, Fate::Delivered).await?;
            }
        }
        let last = self.converged("after two clean sync rounds").await?;
        self.story.push("-- the held replies arrive".into());
        for b in 0..case.browsers {
            while !self.browsers[b].held.is_empty() {
                self.deliver_held(b, 0)?;
            }
        }
        let again = self.converged("after the late replies").await?;
        debug_assert_eq!(last, again);
        self.final_fields(&last)
    }

    fn next_value(&mut self) -> serde_json::Value {
        self.edits += 1;
        serde_json::json!({ "e": self.edits })
    }

    fn edit(&mut self, b: usize, change: Change) {
        let write = self.browsers[b].edit(change);
        let line = format!("{} edits {}", self.browsers[b].name(), describe(&write));
        self.story.push(line);
    }

    /// Browser `b` sends every unconfirmed write, oldest first, each with
    /// `fate` (as `LocalFieldDocument::sync` does, one request each); with
    /// none, reads.
    async fn send(&mut self, b: usize, r: usize, fate: Fate) -> Result<(), FieldViolation> {
        let writes = self.browsers[b].unconfirmed();
        let name = self.browsers[b].name();
        if writes.is_empty() {
            if fate == Fate::Delayed {
                self.story.push(format!("{name} has nothing to send"));
                return Ok(());
            }
            let mut client = self.clients[r].clone();
            let read = client
                .get(&self.key)
                .await
                .map_err(|e| failed(&name, r, &e))?;
            self.story
                .push(format!("{name} reads from replica {r} ({fate:?})"));
            if let Some(document) = read {
                self.check_backend(&document)?;
                match fate {
                    Fate::Held => self.browsers[b].held.push(document),
                    Fate::Lost => {}
                    _ => self.observe(b, &document)?,
                }
            }
            return Ok(());
        }
        for write in writes {
            // An earlier answer of this round may already show it.
            if !self.browsers[b].unconfirmed().contains(&write) {
                continue;
            }
            let sent = self.browsers[b].outgoing(&write);
            match fate {
                Fate::Delayed => {
                    self.story
                        .push(format!("{name} sends {}; delayed", describe(&sent)));
                    self.network.push(InFlight {
                        browser: b,
                        incarnation: self.browsers[b].incarnation(),
                        sender: name.clone(),
                        write: sent,
                    });
                }
                Fate::Duplicated => {
                    self.call(&name, r, &sent).await?;
                    let again = (r + 1) % self.clients.len();
                    let document = self.call(&name, again, &sent).await?;
                    self.observe(b, &document)?;
                }
                Fate::Delivered | Fate::Lost | Fate::Held => {
                    let document = self.call(&name, r, &sent).await?;
                    match fate {
                        Fate::Delivered => self.observe(b, &document)?,
                        Fate::Held => self.browsers[b].held.push(document),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// One request reaches replica `r`: checks its answer against the join
    /// of every write received, and every field's decision.
    async fn call(
        &mut self,
        who: &str,
        r: usize,
        write: &FieldWrite,
    ) -> Result<Document, FieldViolation> {
        let mut client = self.clients[r].clone();
        let reply = client
            .sync_fields(&self.key, write)
            .await
            .map_err(|e| failed(who, r, &e))?;
        self.received.push(write.clone());
        self.totals.writes += 1;
        let state = reply.document.field_document();
        self.story.push(format!(
            "{who} sends {} to replica {r}: {} {:?}; the backend holds {}",
            describe(write),
            reply.report.decision.as_str(),
            reply.report.fields,
            show(&state)
        ));
        self.check_backend(&reply.document)?;
        if let Change::Patch(patch) = &write.change
            && let Some(name) = patch.keys().find(|n| !reply.report.fields.contains_key(*n))
        {
            return Err(violation(
                "Decisions",
                format!("field {name} of {} was not decided", describe(write)),
            ));
        }
        for (field, decision) in &reply.report.fields {
            let held = state.stamp_of(field);
            let ok = match decision {
                Decision::Applied => held == Some(&write.stamp),
                Decision::Stale => held.is_some_and(|s| *s > write.stamp),
                Decision::Unchanged => held == Some(&write.stamp),
            };
            if !ok {
                return Err(violation(
                    "Decisions",
                    format!(
                        "{field} of {} answered {} but the backend holds {}",
                        describe(write),
                        decision.as_str(),
                        show(&state)
                    ),
                ));
            }
            match decision {
                Decision::Applied => {
                    self.totals.applied_fields += 1;
                    self.applied.push((write.clone(), field.clone()));
                }
                Decision::Stale => self.totals.stale_fields += 1,
                Decision::Unchanged => {}
            }
        }
        Ok(reply.document)
    }

    /// The backend holds exactly the join of every write it received.
    fn check_backend(&self, document: &Document) -> Result<(), FieldViolation> {
        let joined = (self.received.iter()).fold(FieldDocument::new(), |s, w| s.join_write(w));
        let held = document.field_document();
        if held != joined {
            return Err(violation(
                "Join",
                format!(
                    "the backend holds {} but the join of what it received is {}",
                    show(&held),
                    show(&joined)
                ),
            ));
        }
        Ok(())
    }

    async fn arrive(&mut self, nth: usize, r: usize) -> Result<(), FieldViolation> {
        if self.network.is_empty() {
            self.story.push("no request is delayed".into());
            return Ok(());
        }
        let request = self.network.remove(nth % self.network.len());
        self.story
            .push(format!("{}'s delayed request arrives", request.sender));
        let document = self.call(&request.sender, r, &request.write).await?;
        let b = request.browser;
        if self.browsers[b].incarnation() != request.incarnation {
            self.story.push(format!(
                "{} has reloaded: the reply is dropped",
                request.sender
            ));
            return Ok(());
        }
        self.observe(b, &document)
    }

    fn deliver_held(&mut self, b: usize, nth: usize) -> Result<(), FieldViolation> {
        if self.browsers[b].held.is_empty() {
            return Ok(());
        }
        let n = nth % self.browsers[b].held.len();
        let document = self.browsers[b].held.remove(n);
        self.story
            .push(format!("{} receives a held reply", self.browsers[b].name()));
        self.observe(b, &document)
    }

    /// A reply reaches browser `b`: no field it shows may go back to an
    /// older register.
    fn observe(&mut self, b: usize, document: &Document) -> Result<(), FieldViolation> {
        let before = self.browsers[b].document().clone();
        self.browsers[b].observe(document);
        let after = self.browsers[b].document();
        for field in FIELDS {
            if after.stamp_of(field) < before.stamp_of(field) {
                let name = self.browsers[b].name();
                return Err(violation(
                    "NoFieldRegression",
                    format!("{name} showed {} and then {}", show(&before), show(after)),
                ));
            }
        }
        if *after != before {
            let line = format!("{} now shows {}", self.browsers[b].name(), show(after));
            self.story.push(line);
        }
        Ok(())
    }

    /// Every replica reads one state; every browser shows it.
    async fn converged(&mut self, when: &str) -> Result<FieldDocument, FieldViolation> {
        let mut states = Vec::new();
        for (r, client) in self.clients.iter().enumerate() {
            let read = (client.clone().get(&self.key).await)
                .map_err(|e| failed("the final read", r, &e))?;
            states.push(read.map(|d| (d.state.clone(), d.field_document())));
        }
        if let Some(r) = states.iter().position(|s| *s != states[0]) {
            return Err(violation(
                "Convergence",
                format!("{when}, replicas 0 and {r} read different states"),
            ));
        }
        let last = states[0]
            .clone()
            .map(|(_, fields)| fields)
            .unwrap_or_default();
        for browser in &self.browsers {
            if *browser.document() != last {
                return Err(violation(
                    "Convergence",
                    format!(
                        "{when}, {} shows {} but the backend holds {}",
                        browser.name(),
                        show(browser.document()),
                        show(&last)
                    ),
                ));
            }
        }
        Ok(last)
    }

    /// Largest stamp wins, field by field; an applied edit is lost only to
    /// a larger write of the same field.
    fn final_fields(&self, last: &FieldDocument) -> Result<(), FieldViolation> {
        for field in FIELDS {
            let winner = (self.received.iter())
                .filter(|w| speaks_of(w, field))
                .max_by(|x, y| x.stamp.cmp(&y.stamp));
            let want = winner.and_then(|w| match &w.change {
                Change::Patch(patch) => patch[field].value().cloned(),
                Change::Whole(value) => value.as_object().and_then(|o| o.get(field).cloned()),
            });
            if last.value_of(field) != want.as_ref() {
                return Err(violation(
                    "LargestStampWins",
                    format!(
                        "{field} ends as {} but its largest write is {}",
                        show(last),
                        winner.map_or("none".into(), describe)
                    ),
                ));
            }
        }
        for (write, field) in &self.applied {
            let stamp: Option<&Stamp> = last.stamp_of(field);
            if stamp == Some(&write.stamp) {
                continue;
            }
            let by =
                (self.received.iter()).find(|w| Some(&w.stamp) == stamp && speaks_of(w, field));
            if stamp.is_none_or(|s| *s < write.stamp) || by.is_none() {
                return Err(violation(
                    "AppliedKept",
                    format!(
                        "{field} of {} was APPLIED, but the backend ends with {}",
                        describe(write),
                        show(last)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn failed(who: &str, replica: usize, error: &Error) -> FieldViolation {
    violation(
        "Rejected",
        format!("a call by {who} to replica {replica} failed: {error}"),
    )
}

/// Runs proptest over `config.cases` cases against the servers behind
/// `clients` (one per replica), each on a fresh document; a failure is
/// shrunk by proptest, then by deleting single steps while it still fails.
pub fn check(
    runtime: &Runtime,
    clients: &[Client],
    variant: FieldVariant,
    config: Config,
    rng: Option<TestRng>,
) -> Result<FieldTotals, TestError<FieldCase>> {
    let prefix = format!("f{:08x}", rand::rng().random::<u32>());
    let counter = RefCell::new(0usize);
    let attempt = |case: &FieldCase| {
        let n = {
            let mut counter = counter.borrow_mut();
            *counter += 1;
            *counter
        };
        let key = DocumentKey::parse("fields", &format!("{prefix}-{n}"), "settings")
            .expect("a valid key");
        runtime
            .block_on(run(case, variant, clients, key))
            .map_err(|(v, story)| format!("{v}\nwhat happened:\n  {}", story.join("\n  ")))
    };
    let totals = RefCell::new(FieldTotals::default());
    let config = Config {
        failure_persistence: None,
        ..config
    };
    let mut runner = match rng {
        Some(rng) => TestRunner::new_with_rng(config, rng),
        None => TestRunner::new(config),
    };
    let result = runner.run(&cases(), |case| match attempt(&case) {
        Ok(t) => {
            let mut sum = totals.borrow_mut();
            sum.cases += t.cases;
            sum.steps += t.steps;
            sum.writes += t.writes;
            sum.applied_fields += t.applied_fields;
            sum.stale_fields += t.stale_fields;
            Ok(())
        }
        Err(failure) => Err(TestCaseError::fail(failure)),
    });
    match result {
        Ok(()) => Ok(totals.into_inner()),
        Err(TestError::Fail(reason, mut case)) => {
            let mut reason = reason.to_string();
            let mut i = 0;
            while i < case.steps.len() {
                let mut shorter = case.clone();
                shorter.steps.remove(i);
                match attempt(&shorter) {
                    Err(failure) => (case, reason, i) = (shorter, failure, 0),
                    Ok(_) => i += 1,
                }
            }
            Err(TestError::Fail(reason.into(), case))
        }
        Err(other) => Err(other),
    }
}
