//! Traces and metrics as a collector receives them: the real server binary,
//! configured only by `OTEL_*` variables, exporting over OTLP/gRPC to a
//! receiver in this test process.
//!
//! Each test runs the server as a child process because OpenTelemetry's
//! providers and `tracing`'s subscriber are process-wide: one process per
//! server keeps tests from reading each other's spans.

use std::process::Stdio;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde_json::json;
use settings_sync_client::Client;
use settings_sync_client::wire as v1;
use settings_sync_protocol::Decision;
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::otlp::{self, Receiver, Span, attr, hex};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SYNC: &str = "settingssync.v1.SettingsSync/Sync";
const WATCH: &str = "settingssync.v1.SettingsSync/Watch";

/// `settings-sync serve` with telemetry pointed at `endpoint`.
struct TracedServer {
    endpoint: String,
    child: Child,
    _data: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy)]
enum Db {
    Postgres,
    Sqlite,
}

impl TracedServer {
    async fn start(otlp: &str, db: Db, env: &[(&str, &str)]) -> TracedServer {
        let (url, data) = match db {
            Db::Postgres => (settings_sync_tests::postgres::fresh_database().await, None),
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("s.db").display());
                (url, Some(dir))
            }
        };
        let mut command = Command::new(settings_sync_tests::replicas::server_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
            .arg("--insecure-no-auth")
            .env("RUST_LOG", "info")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            // Export within milliseconds, so tests wait for little.
            .env("OTEL_BSP_SCHEDULE_DELAY", "20")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "100");
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_SERVICE_NAME",
            "OTEL_TRACES_SAMPLER",
            "OTEL_SDK_DISABLED",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the server");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let addr = loop {
            let line = lines.next_line().await.expect("reading the server log");
            let line = line.expect("the server exited before serving");
            if let Some(rest) = line.split("serving address=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_string();
            }
        };
        // Keep reading the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TracedServer {
            endpoint: format!("http://{addr}"),
            child,
            _data: data,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(self.endpoint.clone())
            .await
            .expect("connecting")
    }

    /// SIGTERM, as Kubernetes stops a pod, and waits for the exit.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("a running server").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success());
        tokio::time::timeout(otlp::PATIENCE, self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .expect("waiting for the server")
    }
}

/// The SERVER span of the `Sync` whose document owner is `owner`, once it
/// and `children` database spans under it have arrived.
async fn sync_span(receiver: &Receiver, owner: &str, nth: usize) -> (Span, Vec<Span>) {
    receiver
        .wait_for_spans("the Sync span", |spans| {
            let server = spans
                .iter()
                .filter(|s| {
                    s.name == SYNC && attr(s, "settings_sync.owner").as_deref() == Some(owner)
                })
                .nth(nth)?
                .clone();
            let children: Vec<Span> = spans
                .iter()
                .filter(|c| c.parent_span_id == server.span_id)
                .cloned()
                .collect();
            (!children.is_empty()).then_some((server, children))
        })
        .await
}

fn assert_attr(span: &Span, key: &str, expected: &str) {
    assert_eq!(
        attr(span, key).as_deref(),
        Some(expected),
        "{key} on\n{}",
        otlp::render(std::slice::from_ref(span))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_write_is_one_server_span_with_its_stamps_and_database_children() {
    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Postgres, &[]).await;
    let mut client = server.client().await;
    let reply = client
        .sync(
            &key("alice"),
            &write(3, "w-tab", json!({"airports": ["SEA"]})),
        )
        .await
        .unwrap();
    assert_eq!(reply.decision, Decision::Applied);

    let (span, children) = sync_span(&receiver, "alice", 0).await;
    println!("{}", otlp::render(&receiver.spans()));
    assert_eq!(otlp::kind(&span), otlp::SpanKind::Server);
    assert_attr(&span, "rpc.system", "grpc");
    assert_attr(&span, "rpc.service", "settingssync.v1.SettingsSync");
    assert_attr(&span, "rpc.method", "Sync");
    assert_attr(&span, "rpc.grpc.status_code", "0");
    assert_attr(&span, "server.address", "127.0.0.1");
    assert_attr(&span, "settings_sync.decision", "APPLIED");
    assert_attr(&span, "settings_sync.tenant", "acme");
    assert_attr(&span, "settings_sync.name", "alerts");
    assert_attr(&span, "settings_sync.revision", "1");
    assert_attr(&span, "settings_sync.stamp.incoming.clock", "3");
    assert_attr(&span, "settings_sync.stamp.incoming.writer", "w-tab");
    assert_attr(&span, "settings_sync.stamp.stored_after.clock", "3");
    assert_attr(&span, "settings_sync.stamp.stored_after.writer", "w-tab");
    // One guarded statement does not say what it replaced.
    assert_eq!(attr(&span, "settings_sync.stamp.stored_before.clock"), None);
    assert!(
        span.parent_span_id.is_empty(),
        "no caller context: a root span"
    );
    assert_eq!(receiver.services(), vec!["settings-sync".to_string()]);

    let [insert] = children.as_slice() else {
        panic!("one statement for an applied write: {children:?}")
    };
    assert_eq!(insert.trace_id, span.trace_id);
    assert_eq!(otlp::kind(insert), otlp::SpanKind::Client);
    assert_eq!(insert.name, "INSERT documents");
    assert_attr(insert, "db.system.name", "postgresql");
    assert_attr(insert, "db.operation.name", "INSERT");
    let sql = attr(insert, "db.query.text").unwrap();
    assert!(
        sql.contains("INSERT INTO documents") && sql.contains("$4::jsonb"),
        "{sql}"
    );
    for bound in ["alice", "SEA", "w-tab"] {
        assert!(
            !sql.contains(bound),
            "bound value {bound} leaked into {sql}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_write_records_the_newer_stamp_it_lost_to() {
    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Postgres, &[]).await;
    let mut client = server.client().await;
    client
        .sync(&key("bob"), &write(5, "w-new", json!({"a": 1})))
        .await
        .unwrap();
    let reply = client
        .sync(&key("bob"), &write(4, "w-old", json!({"a": 0})))
        .await
        .unwrap();
    assert_eq!(reply.decision, Decision::Stale);

    let (span, children) = sync_span(&receiver, "bob", 1).await;
    assert_attr(&span, "settings_sync.decision", "STALE");
    assert_attr(&span, "settings_sync.stamp.incoming.clock", "4");
    assert_attr(&span, "settings_sync.stamp.incoming.writer", "w-old");
    for which in ["stored_before", "stored_after"] {
        assert_attr(&span, &format!("settings_sync.stamp.{which}.clock"), "5");
        assert_attr(
            &span,
            &format!("settings_sync.stamp.{which}.writer"),
            "w-new",
        );
    }
    assert_attr(&span, "settings_sync.revision", "1");
    assert_attr(&span, "rpc.grpc.status_code", "0");
    // The refused guarded write, the read-back of what won, and the
    // override log's record of the write that lost (before the answer).
    let names: Vec<_> = children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["INSERT documents", "SELECT documents", "INSERT overrides"]
    );
    assert!(children.iter().all(|c| c.trace_id == span.trace_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_write_records_equal_stamps() {
    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Postgres, &[]).await;
    let mut client = server.client().await;
    let same = write(2, "w-1", json!({"x": true}));
    client.sync(&key("carol"), &same).await.unwrap();
    let reply = client.sync(&key("carol"), &same).await.unwrap();
    assert_eq!(reply.decision, Decision::Unchanged);

    let (span, _) = sync_span(&receiver, "carol", 1).await;
    assert_attr(&span, "settings_sync.decision", "UNCHANGED");
    for which in ["incoming", "stored_before", "stored_after"] {
        assert_attr(&span, &format!("settings_sync.stamp.{which}.clock"), "2");
        assert_attr(&span, &format!("settings_sync.stamp.{which}.writer"), "w-1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_are_rejected_with_their_reason_and_what_is_known_of_the_stored_stamp() {
    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Postgres, &[]).await;
    let mut client = server.client().await;
    client
        .sync(&key("dave"), &write(7, "w-1", json!({"v": 1})))
        .await
        .unwrap();
    let conflict = client
        .sync(&key("dave"), &write(7, "w-1", json!({"v": 2})))
        .await;
    assert_eq!(
        conflict.unwrap_err().code(),
        Some(tonic::Code::FailedPrecondition)
    );
    let jump = client
        .sync(&key("dave"), &write(9_000_000, "w-2", json!({})))
        .await;
    assert_eq!(
        jump.unwrap_err().code(),
        Some(tonic::Code::FailedPrecondition)
    );

    let (span, _) = sync_span(&receiver, "dave", 1).await;
    assert_attr(&span, "settings_sync.decision", "REJECTED");
    assert_attr(&span, "settings_sync.rejection", "conflicting_content");
    assert_attr(&span, "rpc.grpc.status_code", "9");
    assert_attr(&span, "settings_sync.stamp.stored_before.clock", "7");
    assert_attr(&span, "settings_sync.stamp.stored_before.writer", "w-1");
    // FAILED_PRECONDITION is the caller's fault: not an error of this server.
    assert_eq!(span.status.as_ref().map_or(0, |s| s.code), 0);

    let jump = receiver
        .wait_for_spans("the clock-jump span", |spans| {
            spans
                .iter()
                .find(|s| attr(s, "settings_sync.rejection").as_deref() == Some("clock_jump"))
                .cloned()
        })
        .await;
    assert_attr(&jump, "settings_sync.decision", "REJECTED");
    assert_attr(&jump, "settings_sync.stamp.incoming.clock", "9000000");
    assert_attr(&jump, "settings_sync.stamp.stored_before.clock", "7");
    assert_eq!(
        attr(&jump, "settings_sync.stamp.stored_before.writer"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_makes_the_server_span_a_child_of_the_callers_span() {
    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Sqlite, &[]).await;
    let mut client = server.client().await;
    let mut request = tonic::Request::new(v1::SyncRequest {
        key: Some((&key("erin")).into()),
        value_json: "{}".into(),
        stamp: Some((&write(1, "w-1", json!({})).stamp).into()),
        ..Default::default()
    });
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
        .metadata_mut()
        .insert("tracestate", "vendor=x".parse().unwrap());
    client.raw().sync(request).await.unwrap();

    let (span, children) = sync_span(&receiver, "erin", 0).await;
    assert_eq!(hex(&span.trace_id), trace_id);
    assert_eq!(hex(&span.parent_span_id), caller_span);
    assert_eq!(span.trace_state, "vendor=x");
    assert!(children.iter().all(|c| hex(&c.trace_id) == trace_id));
    assert!(children.iter().all(|c| c.parent_span_id == span.span_id));
    assert!(
        children
            .iter()
            .all(|c| attr(c, "db.system.name").as_deref() == Some("sqlite"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_traceparent_over_grpc_web_continues_its_trace() {
    use settings_sync_tests::grpc_web::{self, Call};
    let receiver = Receiver::start().await;
    let page = "http://localhost:5173";
    let server = TracedServer::start(
        &receiver.endpoint(),
        Db::Sqlite,
        &[("SETTINGS_SYNC_CORS_ALLOWED_ORIGINS", page)],
    )
    .await;
    let addr = server
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address");
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let call = Call {
        origin: Some(page.into()),
        token: None,
        headers: vec![("traceparent", format!("00-{trace_id}-{caller_span}-01"))],
    };
    let request = v1::SyncRequest {
        key: Some((&key("web")).into()),
        value_json: "{}".into(),
        stamp: Some((&write(1, "w-page", json!({})).stamp).into()),
        ..Default::default()
    };
    let reply = grpc_web::unary(addr, "Sync", &call, &request).await;
    assert_eq!(reply.grpc_status().as_deref(), Some("0"));

    let (span, _) = sync_span(&receiver, "web", 0).await;
    assert_eq!(hex(&span.trace_id), trace_id);
    assert_eq!(hex(&span.parent_span_id), caller_span);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_crate_sends_the_callers_current_trace_context() {
    use opentelemetry::context::FutureExt as _;

    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Sqlite, &[]).await;
    let mut client = server.client().await;
    let caller = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let context = opentelemetry::Context::new().with_remote_span_context(caller);
    client
        .sync(&key("frank"), &write(1, "w-1", json!({})))
        .with_context(context)
        .await
        .unwrap();

    let (span, _) = sync_span(&receiver, "frank", 0).await;
    assert_eq!(hex(&span.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&span.parent_span_id), "b7ad6b7169203331");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_ids_are_replaced_by_a_stable_hash_when_redaction_is_on() {
    let receiver = Receiver::start().await;
    let redact = [("SETTINGS_SYNC_TRACE_REDACT_OWNER", "true")];
    let server = TracedServer::start(&receiver.endpoint(), Db::Sqlite, &redact).await;
    let mut client = server.client().await;
    client
        .sync(&key("grace"), &write(1, "w-1", json!({})))
        .await
        .unwrap();
    client
        .sync(&key("grace"), &write(2, "w-1", json!({})))
        .await
        .unwrap();

    let owners = receiver
        .wait_for_spans("two Sync spans", |spans| {
            let owners: Vec<_> = spans
                .iter()
                .filter(|s| s.name == SYNC)
                .filter_map(|s| attr(s, "settings_sync.owner"))
                .collect();
            (owners.len() == 2).then_some(owners)
        })
        .await;
    assert!(
        owners[0].starts_with("sha256:") && owners[0].len() == 23,
        "{owners:?}"
    );
    assert_eq!(owners[0], owners[1], "the same owner hashes the same");
    let everything = otlp::render(&receiver.spans());
    assert!(!everything.contains("grace"), "{everything}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_neither_slows_nor_fails_a_sync() {
    // A port that was just free: connections to it are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let server = TracedServer::start(&endpoint, Db::Sqlite, &[]).await;
    let mut client = server.client().await;
    let started = Instant::now();
    for clock in 1..=50 {
        let reply = client
            .sync(&key("heidi"), &write(clock, "w-1", json!({"n": clock})))
            .await;
        assert_eq!(reply.unwrap().decision, Decision::Applied);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "50 syncs took {elapsed:?}"
    );
    let stopping = Instant::now();
    assert!(server.terminate().await.success());
    // Shutdown gives up on the collector instead of hanging on it.
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_buffered_at_sigterm_are_flushed_before_exit() {
    let receiver = Receiver::start().await;
    // Nothing would be exported for ten minutes but for the flush.
    let slow = [("OTEL_BSP_SCHEDULE_DELAY", "600000")];
    let server = TracedServer::start(&receiver.endpoint(), Db::Sqlite, &slow).await;
    let mut client = server.client().await;
    client
        .sync(&key("ivan"), &write(1, "w-1", json!({})))
        .await
        .unwrap();
    drop(client);
    assert!(receiver.spans().is_empty());
    assert!(server.terminate().await.success());
    let (span, _) = sync_span(&receiver, "ivan", 0).await;
    assert_attr(&span, "settings_sync.decision", "APPLIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_is_one_span_with_events_not_a_span_per_message() {
    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Postgres, &[]).await;
    let mut client = server.client().await;
    let request = v1::WatchRequest {
        tenant: "acme".into(),
        after_revision: Some(0),
        ..Default::default()
    };
    let mut stream = client.raw().watch(request).await.unwrap().into_inner();
    let mut writer = server.client().await;
    for owner in ["judy", "ken", "leo"] {
        writer
            .sync(&key(owner), &write(1, "w-1", json!({})))
            .await
            .unwrap();
    }
    let mut changes = 0;
    while changes < 3 {
        let message = stream
            .message()
            .await
            .unwrap()
            .expect("the stream stays open");
        if let Some(v1::watch_response::Event::Change(_)) = message.event {
            changes += 1;
        }
    }
    drop(stream);

    let watch = receiver
        .wait_for_spans("the Watch span", |spans| {
            spans.iter().find(|s| s.name == WATCH).cloned()
        })
        .await;
    println!("{}", otlp::render(std::slice::from_ref(&watch)));
    assert_eq!(
        receiver.spans().iter().filter(|s| s.name == WATCH).count(),
        1
    );
    assert_attr(&watch, "settings_sync.tenant", "acme");
    assert_attr(&watch, "rpc.grpc.status_code", "1"); // CANCELLED: the client left
    let events: Vec<_> = watch.events.iter().map(|e| e.name.as_str()).collect();
    assert!(
        events.contains(&"watch caught up with the store"),
        "{events:?}"
    );
    assert!(
        events.contains(&"stream closed by the client"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_time_syncs_and_report_watches_and_the_pool() {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;

    let receiver = Receiver::start().await;
    let server = TracedServer::start(&receiver.endpoint(), Db::Postgres, &[]).await;
    let mut client = server.client().await;
    client
        .sync(&key("mia"), &write(2, "w-1", json!({})))
        .await
        .unwrap();
    client
        .sync(&key("mia"), &write(1, "w-0", json!({})))
        .await
        .unwrap();
    let request = v1::WatchRequest {
        tenant: "acme".into(),
        ..Default::default()
    };
    let _stream = client.raw().watch(request).await.unwrap().into_inner();

    let counted = |metrics: &[otlp::Metric], decision: &str| {
        metrics
            .iter()
            .filter(|m| m.name == "settings_sync.sync.decisions")
            .filter_map(|m| match &m.data {
                Some(Data::Sum(sum)) => Some(sum.data_points.clone()),
                _ => None,
            })
            .flatten()
            .any(|p| {
                p.attributes.iter().any(|kv| {
                    kv.key == "decision"
                        && kv.value.as_ref().map(otlp::text).as_deref() == Some(decision)
                })
            })
    };
    receiver
        .wait_for_metrics("APPLIED and STALE counts", |m| {
            (counted(m, "APPLIED") && counted(m, "STALE")).then_some(())
        })
        .await;
    receiver
        .wait_for_metrics("the latency histogram", |m| {
            m.iter().find_map(|m| match &m.data {
                Some(Data::Histogram(h))
                    if m.name == "settings_sync.sync.duration" && m.unit == "s" =>
                {
                    (h.data_points.iter().map(|p| p.count).sum::<u64>() >= 2).then_some(())
                }
                _ => None,
            })
        })
        .await;
    receiver
        .wait_for_metrics("one open watch", |m| {
            m.iter().find_map(|m| match &m.data {
                Some(Data::Sum(sum)) if m.name == "settings_sync.watch.active" => sum
                    .data_points
                    .iter()
                    .any(|p| p.value == Some(otlp::NumberValue::AsInt(1)))
                    .then_some(()),
                _ => None,
            })
        })
        .await;
    receiver
        .wait_for_metrics("pool gauges", |m| {
            let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
            (names.contains(&"db.client.connection.count")
                && names.contains(&"db.client.connection.max"))
            .then_some(())
        })
        .await;
}
