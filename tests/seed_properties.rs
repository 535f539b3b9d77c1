//! The seed post's property test, against the real backend over gRPC with
//! the client crate: simulated browsers run random sequences of the seed's
//! events (change and send, change without sending, sync, reset) plus lost
//! and late replies, then two clean sync rounds. Checked: P1 convergence,
//! P2 no causal regression at the backend, P3 no flicker, P5 nothing
//! acknowledged lost. Against SQLite, PostgreSQL, and 3 replicas over one
//! PostgreSQL. A browser with the seed's flicker bug must be caught.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};
use serde_json::json;
use settings_sync::server::Application;
use settings_sync_client::{Client, LocalDocument};
use settings_sync_protocol::{Decision, Document, DocumentKey, Value, Versioned};
use settings_sync_tests::server::serve_args;
use settings_sync_tests::{Backend, TestServer, postgres};

const BROWSERS: usize = 3;

#[derive(Clone, Debug)]
enum Event {
    ChangeAndSend(usize),
    ChangeWithoutSending(usize),
    /// The request reaches the backend; the reply is held back.
    ChangeAndSendReplyLate(usize),
    /// The oldest held-back reply of a browser finally arrives.
    DeliverLateReply(usize),
    Sync(usize),
    Reset(usize),
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let browser = 0..BROWSERS;
    let event = prop_oneof![
        3 => browser.clone().prop_map(Event::ChangeAndSend),
        2 => browser.clone().prop_map(Event::ChangeWithoutSending),
        2 => browser.clone().prop_map(Event::ChangeAndSendReplyLate),
        2 => browser.clone().prop_map(Event::DeliverLateReply),
        2 => browser.clone().prop_map(Event::Sync),
        1 => browser.prop_map(Event::Reset),
    ];
    prop::collection::vec(event, 1..14)
}

/// How a browser applies what the backend sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Adopt {
    /// The protocol's rule (the client crate's `LocalDocument`).
    Protocol,
    /// The seed's flicker bug: every reply replaces the local value.
    Always,
}

struct Browser {
    doc: LocalDocument,
    /// Edits this incarnation has made or adopted, with their causal pasts.
    seen: BTreeSet<u64>,
    late: Vec<Document>,
}

/// The run of one sequence: causal pasts of every edit, and the facts the
/// properties are checked against.
struct Run {
    key: DocumentKey,
    browsers: Vec<Browser>,
    past: HashMap<u64, BTreeSet<u64>>,
    next_edit: u64,
    observed: Vec<Document>,
    applied: Vec<Versioned>,
    adopt: Adopt,
}

fn edit_of(state: Option<&Versioned>) -> Option<u64> {
    state?.value.as_object()?.get("edit")?.as_u64()
}

impl Run {
    fn precedes(&self, a: Option<u64>, b: Option<u64>) -> bool {
        matches!((a, b), (Some(a), Some(b)) if self.past.get(&b).is_some_and(|p| p.contains(&a)))
    }

    fn edit(&mut self, b: usize) -> Versioned {
        let id = self.next_edit;
        self.next_edit += 1;
        let browser = &mut self.browsers[b];
        self.past.insert(id, browser.seen.clone());
        browser.seen.insert(id);
        browser
            .doc
            .edit(Value::from_json(json!({ "edit": id, "by": b })).expect("an object"))
    }

    /// A reply reaches browser `b`: P3 is checked on the change it makes.
    fn deliver(&mut self, b: usize, document: &Document) -> Result<(), String> {
        self.observed.push(document.clone());
        let before = edit_of(self.browsers[b].doc.current());
        let adopted = match self.adopt {
            Adopt::Protocol => self.browsers[b].doc.observe(document),
            Adopt::Always => {
                let writer = self.browsers[b].doc.writer().clone();
                let mut forced = LocalDocument::with_writer(self.key.clone(), writer);
                forced.observe(document);
                self.browsers[b].doc = forced;
                true
            }
        };
        let after = edit_of(self.browsers[b].doc.current());
        if adopted && let Some(edit) = after {
            let past = self.past.get(&edit).cloned().unwrap_or_default();
            self.browsers[b].seen.insert(edit);
            self.browsers[b].seen.extend(past);
        }
        if before != after && self.precedes(after, before) {
            return Err(format!(
                "P3: browser {b} flickered from edit {before:?} back to {after:?}"
            ));
        }
        Ok(())
    }

    async fn send(&mut self, client: &mut Client, write: &Versioned) -> Result<Document, String> {
        let reply = client
            .sync(&self.key, write)
            .await
            .map_err(|e| e.to_string())?;
        if reply.decision == Decision::Applied {
            self.applied.push(write.clone());
        }
        Ok(reply.document)
    }
}

async fn run_case(
    endpoints: &[String],
    events: &[Event],
    adopt: Adopt,
    case: usize,
) -> Result<(), String> {
    let mut clients = Vec::new();
    for endpoint in endpoints {
        clients.push(
            Client::connect(endpoint.clone())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let key = DocumentKey::parse("acme", &format!("case-{case}"), "alerts").expect("a key");
    let browsers = (0..BROWSERS)
        .map(|_| Browser {
            doc: LocalDocument::new(key.clone()),
            seen: BTreeSet::new(),
            late: Vec::new(),
        })
        .collect();
    let mut run = Run {
        key,
        browsers,
        past: HashMap::new(),
        next_edit: 0,
        observed: Vec::new(),
        applied: Vec::new(),
        adopt,
    };
    for (step, event) in events.iter().enumerate() {
        // Each event goes to some replica: the browsers' requests are balanced.
        let client = &mut clients[step % endpoints.len()];
        match *event {
            Event::ChangeAndSend(b) => {
                let write = run.edit(b);
                let reply = run.send(client, &write).await?;
                run.deliver(b, &reply)?;
            }
            Event::ChangeWithoutSending(b) => {
                run.edit(b);
            }
            Event::ChangeAndSendReplyLate(b) => {
                let write = run.edit(b);
                let reply = run.send(client, &write).await?;
                run.browsers[b].late.push(reply);
            }
            Event::DeliverLateReply(b) => {
                if !run.browsers[b].late.is_empty() {
                    let reply = run.browsers[b].late.remove(0);
                    run.deliver(b, &reply)?;
                }
            }
            Event::Sync(b) => sync(&mut run, client, b).await?,
            Event::Reset(b) => {
                run.browsers[b].doc.reset();
                run.browsers[b].seen.clear();
                run.browsers[b].late.clear();
            }
        }
    }
    for _ in 0..2 {
        for b in 0..BROWSERS {
            sync(&mut run, &mut clients[b % endpoints.len()], b).await?;
        }
    }
    check_end(&mut run, &mut clients[0]).await
}

async fn sync(run: &mut Run, client: &mut Client, b: usize) -> Result<(), String> {
    let reply = match run.browsers[b].doc.current().cloned() {
        Some(state) => Some(run.send(client, &state).await?),
        None => client.get(&run.key).await.map_err(|e| e.to_string())?,
    };
    match reply {
        Some(document) => run.deliver(b, &document),
        None => Ok(()),
    }
}

async fn check_end(run: &mut Run, client: &mut Client) -> Result<(), String> {
    let stored = client
        .get(&run.key)
        .await
        .map_err(|e| e.to_string())?
        .map(|d| d.state);
    // P1: every browser holds the backend's value.
    for (b, browser) in run.browsers.iter().enumerate() {
        if browser.doc.current() != stored.as_ref() {
            return Err(format!(
                "P1: browser {b} holds {:?}, the backend {:?}",
                edit_of(browser.doc.current()),
                edit_of(stored.as_ref())
            ));
        }
    }
    // P2: the backend's states, in revision order, never step back causally.
    run.observed.sort_by_key(|d| d.revision);
    for pair in run.observed.windows(2) {
        let (older, newer) = (edit_of(Some(&pair[0].state)), edit_of(Some(&pair[1].state)));
        if older != newer && run.precedes(newer, older) {
            return Err(format!(
                "P2: the backend went from edit {older:?} back to {newer:?}"
            ));
        }
    }
    // P5: every applied write is stored or beaten by a larger stamp.
    for write in &run.applied {
        if stored.as_ref().is_none_or(|s| s.stamp < write.stamp) {
            return Err(format!("P5: applied write {} lost", write.stamp));
        }
    }
    Ok(())
}

fn cases(default: u32) -> u32 {
    std::env::var("SETTINGS_SYNC_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Runs the property over `endpoints`; returns proptest's verdict.
fn check(
    endpoints: Vec<String>,
    adopt: Adopt,
    cases: u32,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), TestError<Vec<Event>>> {
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    runner.run(&events(), |events| {
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        runtime
            .block_on(run_case(&endpoints, &events, adopt, case))
            .map_err(TestCaseError::fail)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn assert_holds(name: &str, result: Result<(), TestError<Vec<Event>>>, cases: u32) {
    match result {
        Ok(()) => println!("{name}: {cases} sequences, every property held"),
        Err(error) => panic!("{name}: {error}"),
    }
}

#[test]
fn the_seeds_property_test_holds_against_sqlite() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start(Backend::Sqlite));
    let cases = cases(800);
    assert_holds(
        "SQLite",
        check(vec![server.endpoint()], Adopt::Protocol, cases, &runtime),
        cases,
    );
}

#[test]
fn the_seeds_property_test_holds_against_postgres() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start(Backend::Postgres));
    let cases = cases(700);
    assert_holds(
        "PostgreSQL",
        check(vec![server.endpoint()], Adopt::Protocol, cases, &runtime),
        cases,
    );
}

#[test]
fn the_seeds_property_test_holds_against_three_replicas() {
    let runtime = runtime();
    let servers: Vec<TestServer> = runtime.block_on(async {
        let url = postgres::fresh_database().await;
        let mut servers = Vec::new();
        for _ in 0..3 {
            let app = Application::build(&serve_args(&url, &[]))
                .await
                .expect("a replica starts");
            servers.push(TestServer::serve(app, url.clone(), None));
        }
        servers
    });
    let cases = cases(500);
    let endpoints = servers.iter().map(TestServer::endpoint).collect();
    assert_holds(
        "3 replicas",
        check(endpoints, Adopt::Protocol, cases, &runtime),
        cases,
    );
}

/// The planted bug: browsers that adopt every reply, as the seed's first
/// version did. The property test must fail and shrink to a short story.
#[test]
fn a_browser_that_adopts_every_reply_is_caught() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start(Backend::Sqlite));
    match check(vec![server.endpoint()], Adopt::Always, 500, &runtime) {
        Err(TestError::Fail(reason, minimal)) => {
            println!("caught: {reason}\nminimal sequence: {minimal:?}");
            assert!(
                minimal.len() <= 6,
                "shrinking should find a short sequence, got {minimal:?}"
            );
        }
        other => panic!("the flicker bug went unnoticed: {other:?}"),
    }
}
