//! Runs one [`Case`] against real servers over gRPC, checking every
//! property as it goes, and drives proptest over many cases.
//!
//! One call at a time, so the state read after each call (or carried by its
//! reply) is the backend's state at that moment: consecutive observations
//! are every transition the backend made. After the case's steps come two
//! clean sync rounds (each browser in turn syncs, replies delivered), then
//! the replies still held back reach their pages.
//!
//! Checked: P1 after the rounds and again after the late replies (every
//! browser shows what every replica reads); P2, P4 and integrity on every
//! observation of the backend ([`History::observe_backend`]); P3 on every
//! change of what a browser shows; each decision against the state it came
//! with; P5 at the end; and that no call fails.

use std::cell::RefCell;
use std::fmt;

use proptest::test_runner::{Config, TestCaseError, TestError, TestRng, TestRunner};
use rand::Rng;
use settings_sync_client::{Client, Error};
use settings_sync_protocol::{Document, DocumentKey, Stamp, Versioned};
use tokio::runtime::Runtime;

use crate::browsers::{Browser, Variant};
use crate::causal::{History, Knowledge, Property, Violation};
use crate::sequences::{Action, Case, Reply, cases};

/// A failed case: the property it broke and what happened, step by step.
#[derive(Debug)]
pub struct Failure {
    pub violation: Violation,
    pub story: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.violation)?;
        writeln!(f, "what happened:")?;
        for line in &self.story {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Counts over the cases of one check.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub cases: usize,
    pub steps: usize,
    pub edits: usize,
    pub applied: usize,
    pub observations: usize,
}

/// A request delayed in the network.
struct InFlight {
    browser: usize,
    /// The page load that sent it; a reloaded page never gets the reply.
    generation: u32,
    sender: String,
    write: Versioned,
}

struct Run<'a> {
    key: DocumentKey,
    clients: &'a [Client],
    browsers: Vec<Browser>,
    network: Vec<InFlight>,
    knowledge: Vec<Knowledge>,
    history: History,
    story: Vec<String>,
}

/// Runs `case` on a fresh document `key`, with browsers of `variant`.
pub async fn run(
    case: &Case,
    variant: Variant,
    clients: &[Client],
    key: DocumentKey,
) -> Result<Totals, Failure> {
    let mut run = Run {
        browsers: (0..case.browsers)
            .map(|i| Browser::new(variant, key.clone(), i))
            .collect(),
        knowledge: vec![Knowledge::default(); case.browsers],
        network: Vec::new(),
        key,
        clients,
        history: History::default(),
        story: Vec::new(),
    };
    match run.all(case).await {
        Ok(()) => Ok(Totals {
            cases: 1,
            steps: case.steps.len(),
            edits: run.history.edits(),
            applied: run.history.applied(),
            observations: run.history.observations(),
        }),
        Err(violation) => Err(Failure {
            violation,
            story: run.story,
        }),
    }
}

impl Run<'_> {
    async fn all(&mut self, case: &Case) -> Result<(), Violation> {
        for step in &case.steps {
            let (b, r) = case.route(step);
            match step.action {
                Action::Change { delete, send } => {
                    self.edit(b, delete);
                    if let Some(reply) = send {
                        self.send(b, r, reply).await?;
                    }
                }
                Action::Sync(reply) => self.send(b, r, reply).await?,
                Action::DeliverHeld { nth } => self.deliver_held(b, nth)?,
                Action::Reset => {
                    let old = self.browsers[b].name();
                    self.browsers[b].reset();
                    self.knowledge[b].forget();
                    self.say(format!("{old} resets: now {}", self.browsers[b].name()));
                }
                Action::Arrives { nth } => self.arrive(nth, r).await?,
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
                self.send(b, r, Reply::Delivered).await?;
            }
        }
        let last = self.converged("after two clean sync rounds").await?;
        self.story.push("-- the held replies arrive".into());
        for b in 0..case.browsers {
            while !self.browsers[b].held.is_empty() {
                self.deliver_held(b, 0)?;
            }
        }
        self.converged("after the late replies").await?;
        self.history.check_applied_kept(last.as_ref())?;
        let log = self.override_log().await?;
        self.history.check_override_log(last.as_ref(), &log)
    }

    /// The document's override log as (losing stamp, winning stamp), read
    /// through the first replica (they share one database).
    async fn override_log(&self) -> Result<Vec<(Stamp, Stamp)>, Violation> {
        let mut client = self.clients[0].clone();
        let (mut log, mut token) = (Vec::new(), None);
        loop {
            let page = client
                .list_overrides(&self.key, 100, token)
                .await
                .map_err(|e| rejected("the checker", 0, &e))?;
            log.extend(
                page.overrides
                    .into_iter()
                    .map(|o| (o.lost.stamp, o.lost.winner)),
            );
            token = page.next_page_token;
            if token.is_none() {
                return Ok(log);
            }
        }
    }

    fn say(&mut self, line: String) {
        self.story.push(line);
    }

    fn edit(&mut self, b: usize, delete: bool) {
        let (id, value) = self.history.next_value(delete);
        let write = self.browsers[b].edit(value);
        self.history.record_edit(id, &write, &mut self.knowledge[b]);
        let past: Vec<String> = self
            .history
            .past(id)
            .iter()
            .map(|e| format!("e{e}"))
            .collect();
        self.say(format!(
            "{} edits: {} (causal past: {})",
            self.browsers[b].name(),
            self.history.name(Some(&write)),
            if past.is_empty() {
                "none".into()
            } else {
                past.join(" ")
            }
        ));
    }

    /// Browser `b` sends what it shows to replica `r` (reads if it shows
    /// nothing); the reply is delivered, lost or held.
    async fn send(&mut self, b: usize, r: usize, reply: Reply) -> Result<(), Violation> {
        let mut client = self.clients[r].clone();
        let before = self.browsers[b].current().cloned();
        let name = self.browsers[b].name();
        let sent = self.history.name(before.as_ref());
        let (decision, stored) = match reply {
            Reply::Delayed => {
                let line = match before {
                    Some(write) => {
                        self.network.push(InFlight {
                            browser: b,
                            generation: self.browsers[b].generation(),
                            sender: name.clone(),
                            write,
                        });
                        format!("{name} sends {sent}; the request is delayed")
                    }
                    None => format!("{name} has nothing to send"),
                };
                self.say(line);
                return Ok(());
            }
            Reply::Delivered => {
                let decision = self.browsers[b]
                    .sync(&mut client)
                    .await
                    .map_err(|e| rejected(&name, r, &e))?;
                // One call at a time: this read sees the state the sync left.
                let stored = client
                    .get(&self.key)
                    .await
                    .map_err(|e| rejected(&name, r, &e))?;
                (decision, stored)
            }
            Reply::Lost | Reply::Held => {
                let (decision, stored) = match &before {
                    Some(write) => {
                        let answer = client
                            .sync(&self.key, write)
                            .await
                            .map_err(|e| rejected(&name, r, &e))?;
                        (Some(answer.decision), Some(answer.document))
                    }
                    None => (
                        None,
                        client
                            .get(&self.key)
                            .await
                            .map_err(|e| rejected(&name, r, &e))?,
                    ),
                };
                if let (Reply::Held, Some(document)) = (reply, &stored) {
                    self.browsers[b].held.push(document.clone());
                }
                (decision, stored)
            }
        };
        let state = stored.as_ref().map(|d| &d.state);
        let what = match decision {
            Some(d) => format!("sends {sent} to replica {r}: {}", d.as_str()),
            None => format!("reads from replica {r}"),
        };
        self.say(format!(
            "{name} {what}; the backend holds {}{}",
            self.history.name(state),
            match reply {
                Reply::Delivered => String::new(),
                Reply::Lost => "; the reply is lost".into(),
                Reply::Held => "; the reply is held back".into(),
                Reply::Delayed => unreachable!("a delayed request was sent later"),
            }
        ));
        self.history.observe_backend(state)?;
        if let (Some(sent), Some(decision)) = (&before, decision) {
            self.history.decided(sent, decision, state)?;
        }
        self.shown(b, before)
    }

    /// The `nth` delayed request reaches replica `r`; its reply reaches the
    /// page that sent it, unless that page has reloaded since.
    async fn arrive(&mut self, nth: usize, r: usize) -> Result<(), Violation> {
        if self.network.is_empty() {
            self.say("no request is delayed".into());
            return Ok(());
        }
        let request = self.network.remove(nth % self.network.len());
        let mut client = self.clients[r].clone();
        let answer = client
            .sync(&self.key, &request.write)
            .await
            .map_err(|e| rejected(&request.sender, r, &e))?;
        let state = &answer.document.state;
        self.say(format!(
            "{}'s delayed {} reaches replica {r}: {}; the backend holds {}",
            request.sender,
            self.history.name(Some(&request.write)),
            answer.decision.as_str(),
            self.history.name(Some(state)),
        ));
        self.history.observe_backend(Some(state))?;
        self.history
            .decided(&request.write, answer.decision, Some(state))?;
        let b = request.browser;
        if self.browsers[b].generation() != request.generation {
            let line = format!("{} has reloaded: the reply is dropped", request.sender);
            self.say(line);
            return Ok(());
        }
        let before = self.browsers[b].current().cloned();
        self.browsers[b].observe(&answer.document);
        self.shown(b, before)
    }

    fn deliver_held(&mut self, b: usize, nth: usize) -> Result<(), Violation> {
        let held = &mut self.browsers[b].held;
        if held.is_empty() {
            let line = format!("{} has no held reply", self.browsers[b].name());
            self.say(line);
            return Ok(());
        }
        let document = held.remove(nth % held.len());
        let before = self.browsers[b].current().cloned();
        self.browsers[b].observe(&document);
        self.say(format!(
            "{} receives a held reply: {}",
            self.browsers[b].name(),
            self.history.name(Some(&document.state))
        ));
        self.shown(b, before)
    }

    /// Checks P3 if what browser `b` shows changed from `before`, and
    /// records that it has seen the value it adopted.
    fn shown(&mut self, b: usize, before: Option<Versioned>) -> Result<(), Violation> {
        let after = self.browsers[b].current().cloned();
        if before == after {
            return Ok(());
        }
        let name = self.browsers[b].name();
        self.say(format!(
            "{name} now shows {}",
            self.history.name(after.as_ref())
        ));
        self.history
            .check_shown(&name, before.as_ref(), after.as_ref())?;
        if let Some(after) = &after {
            let id = self.history.identify(after)?;
            self.history.adopt(&mut self.knowledge[b], id);
        }
        Ok(())
    }

    /// P1: every replica reads the same state and every browser shows it.
    async fn converged(&mut self, when: &str) -> Result<Option<Versioned>, Violation> {
        let mut states = Vec::new();
        for (r, client) in self.clients.iter().enumerate() {
            let read = client
                .clone()
                .get(&self.key)
                .await
                .map_err(|e| rejected("the final read", r, &e))?;
            states.push(read.map(|d: Document| d.state));
        }
        let last = states[0].clone();
        if let Some(r) = states.iter().position(|s| *s != last) {
            return Err(Violation {
                property: Property::P1Convergence,
                detail: format!(
                    "{when}, replica 0 reads {} but replica {r} reads {}",
                    self.history.name(last.as_ref()),
                    self.history.name(states[r].as_ref())
                ),
            });
        }
        for browser in &self.browsers {
            if browser.current() != last.as_ref() {
                return Err(Violation {
                    property: Property::P1Convergence,
                    detail: format!(
                        "{when}, {} shows {} but the backend holds {}",
                        browser.name(),
                        self.history.name(browser.current()),
                        self.history.name(last.as_ref())
                    ),
                });
            }
        }
        Ok(last)
    }
}

fn rejected(who: &str, replica: usize, error: &Error) -> Violation {
    Violation {
        property: Property::Rejected,
        detail: format!("a call by {who} to replica {replica} failed: {error}"),
    }
}

/// Runs proptest over `config.cases` random cases against the servers
/// behind `clients` (one per replica), each case on a fresh document.
/// `rng`: a fixed seed for a reproducible run, or `None` for a random one.
///
/// A failure is shrunk by proptest, then by deleting single steps while it
/// still fails: proptest deletes steps only before it simplifies them, so a
/// step that became unnecessary later would stay. The sequence returned
/// fails, and fails no more without any one of its steps.
pub fn check(
    runtime: &Runtime,
    clients: &[Client],
    variant: Variant,
    config: Config,
    rng: Option<TestRng>,
) -> Result<Totals, TestError<Case>> {
    let prefix = format!("p{:08x}", rand::rng().random::<u32>());
    let counter = RefCell::new(0usize);
    let attempt = |case: &Case| {
        let n = {
            let mut counter = counter.borrow_mut();
            *counter += 1;
            *counter
        };
        let key =
            DocumentKey::parse("props", &format!("{prefix}-{n}"), "settings").expect("a valid key");
        runtime.block_on(run(case, variant, clients, key))
    };
    let totals = RefCell::new(Totals::default());
    let config = Config {
        failure_persistence: None,
        ..config
    };
    let mut runner = match rng {
        Some(rng) => TestRunner::new_with_rng(config, rng),
        None => TestRunner::new(config),
    };
    let result = runner.run(&cases(clients.len()), |case| match attempt(&case) {
        Ok(t) => {
            let mut sum = totals.borrow_mut();
            sum.cases += t.cases;
            sum.steps += t.steps;
            sum.edits += t.edits;
            sum.applied += t.applied;
            sum.observations += t.observations;
            Ok(())
        }
        Err(failure) => Err(TestCaseError::fail(failure.to_string())),
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
                    Err(failure) => (case, reason, i) = (shorter, failure.to_string(), 0),
                    Ok(_) => i += 1,
                }
            }
            Err(TestError::Fail(reason.into(), case))
        }
        Err(other) => Err(other),
    }
}
