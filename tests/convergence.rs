//! The seed post's property test, against the real backend over gRPC with
//! the client crate: 2 to 4 browsers on one document run random sequences of
//! the seed's events (change and send, change without sending, sync, reset)
//! plus lost and late replies, then two clean sync rounds. Every property
//! is checked (see `settings_sync_tests::simulation`): P1 convergence, P2 no
//! causal regression at the backend, P3 no flicker, P4 monotonic stamps, P5
//! nothing applied lost.
//!
//! Against SQLite, PostgreSQL, and 3 replicas over one PostgreSQL database
//! (each request to a replica the sequence picks). 2,000 sequences in all;
//! `SETTINGS_SYNC_PROPTEST_CASES=N` runs N per backend instead.
//!
//! Two planted bugs must be caught and shrunk to a minimal story: a browser
//! that adopts every reply (the seed's flicker) and one that keeps its
//! writer id across a reset.
//!
//! The same for the opt-in per-field mode (`field_simulation`): per-field
//! browsers' patches and whole writes over a network that also duplicates
//! requests, on the same three backends; each field must end on its
//! largest-stamped write, and two planted per-field bugs must be caught.

use std::time::Instant;

use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng};
use settings_sync::server::Application;
use settings_sync_client::Client;
use settings_sync_tests::browsers::Variant;
use settings_sync_tests::causal::Property;
use settings_sync_tests::field_browsers::FieldVariant;
use settings_sync_tests::field_simulation::{self, FieldCase};
use settings_sync_tests::sequences::Case;
use settings_sync_tests::server::serve_args;
use settings_sync_tests::simulation::{Totals, check};
use settings_sync_tests::{Backend, TestServer, postgres};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn cases(default: u32) -> u32 {
    std::env::var("SETTINGS_SYNC_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Every case's override log is checked whole (P5 made observable), so
/// none may be pruned to the default 20 per document meanwhile.
const KEEP_OVERRIDES: &[&str] = &["--max-overrides-per-document", "1000000"];

async fn connect(servers: &[TestServer]) -> Vec<Client> {
    let mut clients = Vec::new();
    for server in servers {
        clients.push(server.client().await);
    }
    clients
}

/// Runs `cases` sequences of correct browsers against `servers`; every
/// property must hold.
fn holds(name: &str, runtime: &Runtime, servers: &[TestServer], cases: u32) {
    let clients = runtime.block_on(connect(servers));
    let started = Instant::now();
    let config = Config {
        cases,
        ..Config::default()
    };
    match check(runtime, &clients, Variant::Protocol, config, None) {
        Ok(t) => println!(
            "{name}: {} sequences ({} steps, {} edits, {} applied, {} backend states) held every property in {:.1?}",
            t.cases,
            t.steps,
            t.edits,
            t.applied,
            t.observations,
            started.elapsed()
        ),
        Err(TestError::Fail(reason, minimal)) => {
            panic!("{name}: {reason}\nminimal failing sequence: {minimal:?}")
        }
        Err(other) => panic!("{name}: {other}"),
    }
}

#[test]
fn browsers_converge_without_flicker_or_loss_against_sqlite() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start_with(Backend::Sqlite, KEEP_OVERRIDES));
    holds("SQLite", &runtime, &[server], cases(800));
}

#[test]
fn browsers_converge_without_flicker_or_loss_against_postgres() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start_with(Backend::Postgres, KEEP_OVERRIDES));
    holds("PostgreSQL", &runtime, &[server], cases(700));
}

#[test]
fn browsers_converge_without_flicker_or_loss_against_three_replicas_over_one_postgres() {
    let runtime = runtime();
    let servers = runtime.block_on(async {
        let url = postgres::fresh_database().await;
        let mut servers = Vec::new();
        // Each replica migrates at start, under the migration advisory lock.
        for _ in 0..3 {
            let app = Application::build(&serve_args(&url, KEEP_OVERRIDES))
                .await
                .expect("a replica starts");
            servers.push(TestServer::serve(app, url.clone(), None));
        }
        servers
    });
    holds("3 replicas", &runtime, &servers, cases(500));
}

/// Runs the property over a planted bug with a fixed seed; it must fail.
/// Returns the minimal failing sequence and its story.
fn caught(variant: Variant) -> (String, Case) {
    let runtime = runtime();
    let servers = [runtime.block_on(TestServer::start(Backend::Sqlite))];
    let clients = runtime.block_on(connect(&servers));
    let config = Config {
        cases: 500,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let started = Instant::now();
    match check(&runtime, &clients, variant, config, Some(rng)) {
        Err(TestError::Fail(reason, minimal)) => {
            println!(
                "{variant:?} caught and shrunk in {:.1?}\nminimal failing sequence: {minimal:?}\n{reason}",
                started.elapsed()
            );
            (reason.to_string(), minimal)
        }
        Ok(Totals { cases, .. }) => panic!("{variant:?} went unnoticed in {cases} sequences"),
        Err(other) => panic!("{variant:?}: {other}"),
    }
}

#[test]
fn a_browser_that_adopts_every_reply_is_caught_flickering() {
    let (reason, minimal) = caught(Variant::AdoptsEveryReply);
    assert!(
        reason.starts_with(&format!("{:?}", Property::P3NoFlicker)),
        "expected a flicker, got {reason}"
    );
    assert!(
        minimal.steps.len() <= 2,
        "shrinking should find a short sequence, got {minimal:?}"
    );
}

#[test]
fn a_browser_that_keeps_its_writer_id_across_a_reset_is_caught() {
    let (reason, minimal) = caught(Variant::ReusesWriterId);
    assert!(
        reason.starts_with(&format!("{:?}", Property::Rejected))
            && reason.contains("FailedPrecondition"),
        "expected the backend to refuse a reused stamp, got {reason}"
    );
    assert!(
        minimal.steps.len() <= 3,
        "shrinking should find a short sequence, got {minimal:?}"
    );
}

/// The per-field mode (`settings_sync_tests::field_simulation`): per-field
/// browsers edit fields of one document by patches and whole writes over a
/// lossy, delaying, duplicating network; every check must hold.
fn fields_hold(name: &str, runtime: &Runtime, servers: &[TestServer], cases: u32) {
    let clients = runtime.block_on(connect(servers));
    let started = Instant::now();
    let config = Config {
        cases,
        ..Config::default()
    };
    match field_simulation::check(runtime, &clients, FieldVariant::Protocol, config, None) {
        Ok(t) => println!(
            "{name}, per field: {} sequences ({} steps, {} writes received, {} fields applied, {} stale) held every check in {:.1?}",
            t.cases,
            t.steps,
            t.writes,
            t.applied_fields,
            t.stale_fields,
            started.elapsed()
        ),
        Err(TestError::Fail(reason, minimal)) => {
            panic!("{name}: {reason}\nminimal failing sequence: {minimal:?}")
        }
        Err(other) => panic!("{name}: {other}"),
    }
}

#[test]
fn per_field_browsers_converge_and_keep_each_fields_largest_write_against_sqlite() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start(Backend::Sqlite));
    fields_hold("SQLite", &runtime, &[server], cases(300));
}

#[test]
fn per_field_browsers_converge_and_keep_each_fields_largest_write_against_postgres() {
    let runtime = runtime();
    let server = runtime.block_on(TestServer::start(Backend::Postgres));
    fields_hold("PostgreSQL", &runtime, &[server], cases(250));
}

#[test]
fn per_field_browsers_converge_against_three_replicas_over_one_postgres() {
    let runtime = runtime();
    let servers = runtime.block_on(async {
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
    fields_hold("3 replicas", &runtime, &servers, cases(200));
}

/// A planted per-field bug with a fixed seed, against SQLite: it must be
/// caught. Returns the reason and the minimal failing sequence.
fn fields_caught(variant: FieldVariant) -> (String, FieldCase) {
    let runtime = runtime();
    let servers = [runtime.block_on(TestServer::start(Backend::Sqlite))];
    let clients = runtime.block_on(connect(&servers));
    let config = Config {
        cases: 300,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let started = Instant::now();
    match field_simulation::check(&runtime, &clients, variant, config, Some(rng)) {
        Err(TestError::Fail(reason, minimal)) => {
            println!(
                "{variant:?} caught and shrunk in {:.1?}\nminimal failing sequence: {minimal:?}\n{reason}",
                started.elapsed()
            );
            (reason.to_string(), minimal)
        }
        Ok(t) => panic!("{variant:?} went unnoticed in {} sequences", t.cases),
        Err(other) => panic!("{variant:?}: {other}"),
    }
}

#[test]
fn a_per_field_browser_that_adopts_by_the_document_stamp_is_caught() {
    let (reason, minimal) = fields_caught(FieldVariant::AdoptsByDocumentStamp);
    assert!(
        reason.starts_with("NoFieldRegression") || reason.starts_with("Convergence"),
        "expected a field going back on screen, got {reason}"
    );
    assert!(
        minimal.steps.len() <= 6,
        "a short sequence, got {minimal:?}"
    );
}

#[test]
fn a_per_field_browser_that_drops_a_field_of_its_patch_is_caught() {
    let (reason, minimal) = fields_caught(FieldVariant::DropsAField);
    assert!(
        reason.starts_with("Convergence") || reason.starts_with("Decisions"),
        "expected the dropped field to be missed, got {reason}"
    );
    assert!(
        minimal.steps.len() <= 3,
        "a short sequence, got {minimal:?}"
    );
}
