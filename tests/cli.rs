//! The CLI a person pokes the server with: the real binary against a real
//! server. Output is one JSON line per document; a failure is one line on
//! stderr and an exit code per kind, never a backtrace.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::replicas::server_binary;
use settings_sync_tests::tokens::{Tokens, strs};
use settings_sync_tests::{Backend, TestServer};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

const PATIENCE: Duration = Duration::from_secs(10);

fn cli(server: &str, args: &[&str]) -> Command {
    let mut command = Command::new(server_binary());
    command
        .args(args)
        .args(["--server", server])
        .env_remove("SETTINGS_SYNC_TOKEN")
        .env_remove("SETTINGS_SYNC_TOKEN_FILE")
        // As in many developers' shells: must not turn errors into traces.
        .env("RUST_BACKTRACE", "full")
        .kill_on_drop(true);
    command
}

async fn run(server: &str, args: &[&str]) -> Output {
    let output = cli(server, args).output();
    tokio::time::timeout(PATIENCE, output)
        .await
        .expect("the CLI finishes in time")
        .expect("running the CLI")
}

fn stdout_json(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// Exits with `code` and says `what` on exactly one line of stderr.
fn assert_fails(output: &Output, code: i32, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace:\n{stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(what),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failure_is_one_line_with_its_own_exit_code() {
    let server = TestServer::start(Backend::Sqlite).await;
    let endpoint = server.endpoint();
    let missing = run(&endpoint, &["get", "acme", "carol", "alerts"]).await;
    assert_fails(&missing, 3, "document acme/carol/alerts not found");
    let bad_key = run(&endpoint, &["get", "acme", "car ol", "alerts"]).await;
    assert_fails(&bad_key, 2, "owner may contain only");
    let bad_json = run(&endpoint, &["put", "acme", "carol", "alerts", "{"]).await;
    assert_fails(&bad_json, 2, "not valid JSON");
    let too_large = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024));
    let refused = run(&endpoint, &["put", "acme", "carol", "alerts", &too_large]).await;
    assert_fails(&refused, 4, "more than the limit");
    // A port nobody listens on: the server's, after it stopped.
    drop(server);
    let unreachable = run(&endpoint, &["get", "acme", "carol", "alerts"]).await;
    assert_fails(&unreachable, 6, "cannot connect");
    let bad_uri = run("not a uri", &["get", "acme", "carol", "alerts"]).await;
    assert_fails(&bad_uri, 2, "not a server address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_serving_without_a_token_and_exits_6_when_the_server_is_gone() {
    // Authentication on, no token sent: probes carry none.
    let tokens = Tokens::new();
    let server = TestServer::start_with(Backend::Sqlite, &strs(&tokens.flags())).await;
    let endpoint = server.endpoint();
    let serving = run(&endpoint, &["health"]).await;
    assert_eq!(serving.status.code(), Some(0), "{serving:?}");
    assert_eq!(stdout_json(&serving), vec![json!({"status": "SERVING"})]);
    let named = run(
        &endpoint,
        &["health", "--service", "settingssync.v1.SettingsSync"],
    )
    .await;
    assert_eq!(named.status.code(), Some(0), "{named:?}");
    drop(server);
    let gone = run(&endpoint, &["health"]).await;
    assert_fails(&gone, 6, &endpoint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_call_exits_with_code_5() {
    let tokens = Tokens::new();
    let server = TestServer::start_with(Backend::Sqlite, &strs(&tokens.flags())).await;
    let output = run(&server.endpoint(), &["get", "acme", "alice", "alerts"]).await;
    assert_fails(&output, 5, "Unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_writes_a_stamped_tombstone_like_put_writes_a_value() {
    let server = TestServer::start(Backend::Sqlite).await;
    let endpoint = server.endpoint();
    let put = run(&endpoint, &["put", "acme", "alice", "alerts", r#"{"a":1}"#]).await;
    assert!(put.status.success(), "{put:?}");
    let put = &stdout_json(&put)[0];
    let deleted = run(&endpoint, &["delete", "acme", "alice", "alerts"]).await;
    assert!(deleted.status.success(), "{deleted:?}");
    let deleted = &stdout_json(&deleted)[0];
    assert_eq!(deleted["decision"], "APPLIED");
    assert_eq!(deleted["value"], Value::Null);
    let put_clock = put["stamp"]["clock"].as_u64().unwrap();
    assert_eq!(deleted["stamp"]["clock"].as_u64(), Some(put_clock + 1));
    // An old tab's delete loses to the stored stamp, as a write would.
    let stale = run(
        &endpoint,
        &[
            "delete", "acme", "alice", "alerts", "--clock", "1", "--writer", "old-tab",
        ],
    )
    .await;
    assert!(stale.status.success(), "{stale:?}");
    let stale = &stdout_json(&stale)[0];
    assert_eq!(stale["decision"], "STALE");
    assert_eq!(stale["stamp"], deleted["stamp"]);
    let mut client = server.client().await;
    let stored = client.get(&key("alice")).await.unwrap().unwrap();
    assert!(stored.state.value.is_tombstone());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_writes_named_fields_and_prints_each_fields_decision() {
    let server = TestServer::start(Backend::Sqlite).await;
    let endpoint = server.endpoint();
    let patch = |extra: &[&str]| {
        let mut args = vec!["patch", "acme", "alice", "alerts"];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let ok = async |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&endpoint, &args).await;
        assert!(output.status.success(), "{output:?}");
        stdout_json(&output).remove(0)
    };

    let first = ok(patch(&[
        "--set",
        "email=true",
        "--set",
        r#"airports=["SEA"]"#,
    ]))
    .await;
    assert_eq!(first["decision"], "APPLIED");
    assert_eq!(
        first["field_decisions"],
        json!({"airports": "APPLIED", "email": "APPLIED"})
    );
    assert_eq!(first["value"], json!({"airports": ["SEA"], "email": true}));
    let stamp = first["stamp"].clone();
    assert_eq!(first["field_stamps"]["email"], stamp);
    assert_eq!(first["floor"], Value::Null);

    // An old tab's edit of another field survives next to the newer ones.
    let other = ok(patch(&[
        "--set",
        r#"theme="dark""#,
        "--clock",
        "1",
        "--writer",
        "old-tab",
    ]))
    .await;
    assert_eq!(other["decision"], "APPLIED");
    assert_eq!(
        other["value"],
        json!({"airports": ["SEA"], "email": true, "theme": "dark"})
    );
    // Its edit of a field written with a larger stamp is STALE, alone.
    let stale = ok(patch(&[
        "--set",
        "email=false",
        "--set",
        "sound=1",
        "--clock",
        "1",
        "--writer",
        "old-tab2",
    ]))
    .await;
    assert_eq!(stale["decision"], "STALE");
    assert_eq!(
        stale["field_decisions"],
        json!({"email": "STALE", "sound": "APPLIED"})
    );
    assert_eq!(stale["value"]["email"], true);
    assert_eq!(stale["value"]["sound"], 1);

    // A fresh client's delete: past every clock, a field tombstone.
    let deleted = ok(patch(&["--delete", "theme"])).await;
    assert_eq!(deleted["field_decisions"], json!({"theme": "APPLIED"}));
    assert!(deleted["value"].get("theme").is_none());
    assert_eq!(deleted["field_stamps"]["theme"]["deleted"], true);
    assert!(deleted["stamp"]["clock"].as_u64() > stamp["clock"].as_u64());
    let got = run(&endpoint, &["get", "acme", "alice", "alerts"]).await;
    assert_eq!(
        stdout_json(&got)[0]["field_stamps"],
        deleted["field_stamps"]
    );

    // The document holds a patch: a whole-document write is refused.
    let put = run(&endpoint, &["put", "acme", "alice", "alerts", "{}"]).await;
    assert_fails(&put, 4, "per-field");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_patch_exits_like_other_bad_input_and_changes_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let endpoint = server.endpoint();
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--set", "email"], 2, "expected FIELD=JSON"),
        (&["--set", "email={"], 2, "not valid JSON"),
        (&["--set", "=1"], 2, "field names must be"),
        (&["--set", "a=1", "--delete", "a"], 2, "edited twice"),
        (&[], 2, "nothing to patch"),
        (
            &["--set", "a=1", "--clock", "0", "--writer", "tab"],
            4,
            "clock",
        ),
    ];
    for (extra, code, what) in cases {
        let mut args = vec!["patch", "acme", "alice", "alerts"];
        args.extend_from_slice(extra);
        assert_fails(&run(&endpoint, &args).await, code, what);
    }
    let too_large = format!("pad=\"{}\"", "x".repeat(70 * 1024));
    let args = ["patch", "acme", "alice", "alerts", "--set", &too_large];
    assert_fails(&run(&endpoint, &args).await, 4, "more than the limit");
    let mut client = server.client().await;
    assert_eq!(client.get(&key("alice")).await.unwrap(), None);
}

struct Watcher {
    // Killed when dropped (`kill_on_drop`).
    _child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl Watcher {
    fn start(endpoint: &str, args: &[&str]) -> Watcher {
        let mut child = cli(endpoint, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the CLI");
        Watcher {
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            _child: child,
        }
    }

    async fn change(&mut self) -> Value {
        let line = tokio::time::timeout(PATIENCE, self.stdout.next_line())
            .await
            .expect("a change in time")
            .unwrap()
            .expect("the watcher is running");
        serde_json::from_str(&line).expect("a JSON line")
    }

    async fn progress(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.stderr.next_line())
            .await
            .expect("progress in time")
            .unwrap()
            .expect("the watcher is running")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_json_line_per_change_and_resumes_after_a_revision() {
    let server = TestServer::start(Backend::Sqlite).await;
    let endpoint = server.endpoint();
    let mut client = server.client().await;
    let mut watcher = Watcher::start(&endpoint, &["watch", "acme"]);
    assert!(
        watcher.progress().await.contains("caught up at revision 0"),
        "progress goes to stderr"
    );
    let alice = client
        .sync(&key("alice"), &write(1, "tab", json!({"a": 1})))
        .await
        .unwrap()
        .document;
    let bob = client
        .sync(&key("bob"), &write(1, "tab", json!({"b": 1})))
        .await
        .unwrap()
        .document;
    let gone = client
        .sync(&key("alice"), &write(2, "tab", Value::Null))
        .await
        .unwrap()
        .document;
    let first = watcher.change().await;
    assert_eq!(first["key"], "acme/alice/alerts");
    assert_eq!(first["value"], json!({"a": 1}));
    assert_eq!(first["revision"], alice.revision);
    assert_eq!(watcher.change().await["revision"], bob.revision);
    let tombstone = watcher.change().await;
    assert_eq!(tombstone["value"], Value::Null);
    assert_eq!(tombstone["revision"], gone.revision);
    drop(watcher);

    // Resume after alice's first write, following alice only.
    let after = alice.revision.to_string();
    let mut resumed = Watcher::start(
        &endpoint,
        &[
            "watch",
            "acme",
            "--owner",
            "alice",
            "--after-revision",
            &after,
        ],
    );
    assert_eq!(resumed.change().await["revision"], gone.revision);
    let progress = resumed.progress().await;
    assert!(
        progress.contains(&format!("caught up at revision {}", gone.revision)),
        "{progress}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_server_refuses_exits_with_code_4_and_no_resume_hint() {
    let server = TestServer::start(Backend::Sqlite).await;
    let output = run(
        &server.endpoint(),
        &["watch", "acme", "--after-revision", "7"],
    )
    .await;
    assert_fails(&output, 4, "past the tenant's latest revision 0");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("resume with"),
        "resuming would fail again: {stderr}"
    );
}

#[test]
fn help_shows_an_example_for_each_client_command_and_the_exit_codes() {
    for command in ["get", "put", "delete", "patch", "query", "watch"] {
        let output = std::process::Command::new(server_binary())
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}: {output:?}");
        assert!(
            help.contains(&format!("settings-sync {command} acme")),
            "{command}: {help}"
        );
    }
    let output = std::process::Command::new(server_binary())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("3 document not found"), "{help}");
    assert!(help.contains("6 server unreachable"), "{help}");
}

/// `overrides` lists what lost, newest first; `reapply` writes one again
/// under a fresh stamp, and what it replaces is listed in turn.
async fn overrides_and_reapply(backend: Backend) {
    let server = TestServer::start(backend).await;
    let endpoint = server.endpoint();
    let put = |value: &'static str, clock: &'static str, writer: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let args = [
                "put", "acme", "alice", "alerts", value, "--clock", clock, "--writer", writer,
            ];
            let output = run(&endpoint, &args).await;
            assert_eq!(output.status.code(), Some(0), "{output:?}");
            stdout_json(&output)[0]["decision"].clone()
        }
    };
    assert_eq!(put(r#"{"email":true}"#, "5", "tab-a").await, "APPLIED");
    assert_eq!(put(r#"{"email":false}"#, "3", "tab-b").await, "STALE");
    assert_eq!(put(r#"{"email":"daily"}"#, "7", "tab-c").await, "APPLIED");

    let listed = run(&endpoint, &["overrides", "acme", "alice", "alerts"]).await;
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let lines = stdout_json(&listed);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["kind"], "overtaken");
    assert_eq!(lines[0]["lost_value"], json!({"email": true}));
    assert_eq!(
        lines[0]["lost_stamp"],
        json!({"clock": 5, "writer": "tab-a"})
    );
    assert_eq!(
        lines[0]["winner_stamp"],
        json!({"clock": 7, "writer": "tab-c"})
    );
    assert_eq!(lines[1]["kind"], "stale");
    assert_eq!(lines[1]["lost_value"], json!({"email": false}));
    assert_eq!(lines[1]["field"], Value::Null);

    let id = lines[1]["id"].as_i64().expect("an id").to_string();
    let reapplied = run(&endpoint, &["reapply", "acme", "alice", "alerts", &id]).await;
    assert_eq!(reapplied.status.code(), Some(0), "{reapplied:?}");
    let reply = &stdout_json(&reapplied)[0];
    assert_eq!(reply["decision"], "APPLIED");
    assert_eq!(reply["value"], json!({"email": false}));
    assert_eq!(
        reply["stamp"]["clock"], 8,
        "a fresh stamp past the stored one"
    );

    let listed = stdout_json(&run(&endpoint, &["overrides", "acme", "alice", "alerts"]).await);
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[0]["lost_stamp"],
        json!({"clock": 7, "writer": "tab-c"})
    );

    let unknown = run(&endpoint, &["reapply", "acme", "alice", "alerts", "999999"]).await;
    assert_fails(&unknown, 3, "has no override 999999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_lists_what_lost_and_reapply_writes_it_again_in_sqlite() {
    overrides_and_reapply(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_lists_what_lost_and_reapply_writes_it_again_in_postgres() {
    overrides_and_reapply(Backend::Postgres).await;
}
