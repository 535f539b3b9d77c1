//! Watch: every change once, in revision order, resumable, gap-free.

use std::time::Duration;

use serde_json::json;
use settings_sync_proto::v1::watch_response::Event;
use settings_sync_proto::v1::{self, WatchRequest};
use settings_sync_protocol::{Document, DocumentKey};
use settings_sync_tests::both_stores;
use settings_sync_tests::fixtures::{assert_refused, key, write};
use settings_sync_tests::{Backend, TestServer};
use tonic::{Code, Streaming};

const PATIENCE: Duration = Duration::from_secs(10);

fn watch_request(owner: &str, after_revision: Option<i64>) -> WatchRequest {
    WatchRequest {
        tenant: "acme".into(),
        owner: owner.into(),
        name: String::new(),
        after_revision,
    }
}

async fn open(server: &TestServer, request: WatchRequest) -> Streaming<v1::WatchResponse> {
    let mut client = server.client().await;
    let mut stream = client.raw().watch(request).await.unwrap().into_inner();
    // The first message is the progress that says the replay is done.
    match next_event(&mut stream).await {
        Event::Progress(_) => stream,
        other => panic!("expected the initial progress, got {other:?}"),
    }
}

async fn next_event(stream: &mut Streaming<v1::WatchResponse>) -> Event {
    let message = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event in time");
    message
        .unwrap()
        .expect("the stream is open")
        .event
        .expect("an event")
}

/// The next change, skipping progress messages.
async fn next_change(stream: &mut Streaming<v1::WatchResponse>) -> Document {
    loop {
        if let Event::Change(document) = next_event(stream).await {
            return Document::try_from(document).unwrap();
        }
    }
}

both_stores!(
    a_watcher_sees_every_later_change_in_revision_order,
    |server: TestServer| async move {
        let mut client = server.client().await;
        client
            .sync(&key("before"), &write(1, "tab", json!({"n": 0})))
            .await
            .unwrap();
        let mut watcher = open(&server, watch_request("", None)).await;
        let mut sent = Vec::new();
        for (i, owner) in ["a", "b", "a"].iter().enumerate() {
            let reply = client
                .sync(&key(owner), &write(i as u64 + 1, "tab", json!({"i": i})))
                .await
                .unwrap();
            sent.push(reply.document);
        }
        let deleted = client
            .sync(&key("b"), &write(9, "tab", serde_json::Value::Null))
            .await
            .unwrap();
        sent.push(deleted.document);
        for expected in &sent {
            assert_eq!(&next_change(&mut watcher).await, expected);
        }
    }
);

both_stores!(
    a_watcher_filters_by_owner_and_name,
    |server: TestServer| async move {
        let mut client = server.client().await;
        let mut watcher = open(
            &server,
            WatchRequest {
                name: "alerts".into(),
                ..watch_request("alice", None)
            },
        )
        .await;
        let other_name = DocumentKey::parse("acme", "alice", "ui").unwrap();
        client
            .sync(&other_name, &write(1, "tab", json!({})))
            .await
            .unwrap();
        client
            .sync(&key("bob"), &write(1, "tab", json!({})))
            .await
            .unwrap();
        let wanted = client
            .sync(&key("alice"), &write(1, "tab", json!({"n": 1})))
            .await
            .unwrap();
        assert_eq!(next_change(&mut watcher).await, wanted.document);
    }
);

both_stores!(
    a_watcher_resumes_after_a_revision_without_gaps_or_repeats,
    |server: TestServer| async move {
        let mut client = server.client().await;
        let mut documents = Vec::new();
        for i in 0..5u64 {
            let reply = client
                .sync(&key(&format!("u{i}")), &write(1, "tab", json!({"i": i})))
                .await
                .unwrap();
            documents.push(reply.document);
        }
        let resume_after = documents[1].revision;
        let mut watcher = client
            .raw()
            .watch(watch_request("", Some(resume_after)))
            .await
            .unwrap()
            .into_inner();
        for expected in &documents[2..] {
            assert_eq!(&next_change(&mut watcher).await, expected);
        }
        let live = client
            .sync(&key("u9"), &write(1, "tab", json!({"live": true})))
            .await
            .unwrap();
        assert_eq!(next_change(&mut watcher).await, live.document);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watcher_is_told_it_is_current() {
    let server = TestServer::start_with(Backend::Sqlite, &["--watch-progress-ms", "100"]).await;
    let mut client = server.client().await;
    let written = client
        .sync(&key("a"), &write(1, "tab", json!({})))
        .await
        .unwrap()
        .document;
    let mut watcher = client
        .raw()
        .watch(watch_request("", Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_change(&mut watcher).await, written);
    for _ in 0..2 {
        match next_event(&mut watcher).await {
            Event::Progress(progress) => assert!(progress.revision >= written.revision),
            other => panic!("an idle stream carries only progress, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_compacted_history_is_out_of_range() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let server = TestServer::start_with(backend, &["--change-retention-seconds", "0"]).await;
        let mut client = server.client().await;
        client
            .sync(&key("a"), &write(1, "tab", json!({})))
            .await
            .unwrap();
        client
            .sync(&key("a"), &write(2, "tab", json!({})))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let status = loop {
            let mut stream = client
                .raw()
                .watch(watch_request("", Some(0)))
                .await
                .unwrap()
                .into_inner();
            match stream.message().await {
                Err(status) => break status,
                Ok(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(_) => panic!("{backend:?}: history was never compacted"),
            }
        };
        assert_eq!(
            status.code(),
            Code::OutOfRange,
            "{backend:?}: {}",
            status.message()
        );
        // The current state is still there to re-read, and new changes flow.
        assert!(client.get(&key("a")).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_watch_requests_are_invalid_arguments() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = server.client().await;
    for request in [
        WatchRequest {
            tenant: String::new(),
            ..watch_request("", None)
        },
        watch_request("bad owner", None),
        watch_request("", Some(-1)),
    ] {
        let status = client.raw().watch(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    }
}

/// A writer that took the tenant's next revision but has not committed
/// holds back every later writer, so a watcher can never see a later
/// revision first and then skip the late one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_committing_writer_is_never_skipped() {
    use sqlx::Connection;
    let server = TestServer::start(Backend::Postgres).await;
    let mut client = server.client().await;
    let first = client
        .sync(&key("a"), &write(1, "tab", json!({"n": 1})))
        .await
        .unwrap()
        .document;
    let mut watcher = open(&server, watch_request("", Some(first.revision))).await;

    // The slow writer: takes revision first+1 and sits on it.
    let mut slow = sqlx::PgConnection::connect(&server.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
    let slow_revision: i64 =
        sqlx::query_scalar("UPDATE tenant_revisions SET revision = revision + 1 WHERE tenant = 'acme' RETURNING revision")
            .fetch_one(&mut slow)
            .await
            .unwrap();

    // A fast writer meanwhile: it must wait for the slow one.
    let mut fast_client = client.clone();
    let fast = tokio::spawn(async move {
        fast_client
            .sync(&key("b"), &write(1, "tab", json!({"fast": true})))
            .await
    });
    // Wait until the fast writer is blocked on the slow one's lock.
    let mut observer = sqlx::PgConnection::connect(&server.database_url)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !fast.is_finished(),
            "a later writer can not commit before the slow one"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fast writer never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !fast.is_finished(),
        "a later writer can not commit before the slow one"
    );

    sqlx::query(
        "INSERT INTO changes (tenant, revision, owner, name, value, clock, writer, updated_at)
         VALUES ('acme', $1, 'slow', 'alerts', '{\"slow\": true}', 1, 'tab', now())",
    )
    .bind(slow_revision)
    .execute(&mut slow)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    let fast = fast.await.unwrap().unwrap().document;
    assert!(fast.revision > slow_revision);

    let seen_first = next_change(&mut watcher).await;
    assert_eq!(
        (seen_first.key.owner.as_str(), seen_first.revision),
        ("slow", slow_revision)
    );
    assert_eq!(next_change(&mut watcher).await, fast);
}

/// A watcher that stops reading is cut off with a clear status and the
/// revision to resume from; the server does not buffer for it without bound.
/// (HTTP/2 flow control lets a few megabytes through first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stops_reading_is_cut_off_with_a_clear_status() {
    // A bound on the whole scenario, so a regression fails instead of hanging CI.
    tokio::time::timeout(Duration::from_secs(120), stalled_watcher_scenario())
        .await
        .expect("the stalled-watcher scenario finished in time");
}

async fn stalled_watcher_scenario() {
    const WRITES: u64 = 600;
    let server = TestServer::start_with(
        Backend::Sqlite,
        &["--watch-buffer", "8", "--watch-poll-ms", "5"],
    )
    .await;
    let mut client = server.client().await;
    let mut stalled = open(&server, watch_request("", None)).await;
    let padding = "x".repeat(16 * 1024);
    for i in 0..WRITES {
        let w = write(1, "tab", json!({"i": i, "padding": padding}));
        client.sync(&key(&format!("u{i}")), &w).await.unwrap();
    }
    let mut changes = 0;
    let status = loop {
        match next_message(&mut stalled).await {
            Ok(Event::Change(_)) => changes += 1,
            Ok(Event::Progress(_)) => {}
            Err(status) => break status,
        }
        assert!(changes < WRITES, "the stalled watcher was never cut off");
    };
    assert_refused(&status, Code::ResourceExhausted, "after_revision");
}

async fn next_message(stream: &mut Streaming<v1::WatchResponse>) -> Result<Event, tonic::Status> {
    let message = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an answer in time")?;
    Ok(message
        .expect("a status before the stream ends")
        .event
        .expect("an event"))
}

both_stores!(
    a_watcher_asking_past_the_latest_revision_is_told_so_not_left_idle,
    |server: TestServer| async move {
        let mut client = server.client().await;
        let latest = client
            .sync(&key("a"), &write(1, "tab", json!({})))
            .await
            .unwrap()
            .document
            .revision;
        // At the latest revision is fine: nothing to replay, then live.
        open(&server, watch_request("", Some(latest))).await;
        let mut stream = client
            .raw()
            .watch(watch_request("", Some(latest + 5)))
            .await
            .unwrap()
            .into_inner();
        let status = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("an answer in time")
            .expect_err("refused, not an idle stream");
        assert_refused(
            &status,
            Code::OutOfRange,
            &format!("latest revision {latest}"),
        );
    }
);

/// Revisions of the changes on `stream` until it ends with an error or
/// delivers `last`; the error, if any.
async fn drain(
    stream: &mut Streaming<v1::WatchResponse>,
    last: i64,
) -> (Vec<i64>, Option<tonic::Status>) {
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("a message in time");
        match message {
            Ok(Some(v1::WatchResponse {
                event: Some(Event::Change(document)),
            })) => seen.push(document.revision),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => return (seen, Some(status)),
        }
    }
    (seen, None)
}

/// A watcher that stops reading pins at most `--watch-buffer-bytes` of
/// changes, however few they are: then it is cut off, told where to resume,
/// and resuming (a replay paged from the store) loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_of_large_documents_is_cut_off_at_the_byte_bound_and_resumes() {
    const DOCUMENTS: usize = 200;
    let server = TestServer::start_with(
        Backend::Sqlite,
        &["--watch-buffer-bytes", "1048576", "--watch-buffer", "1024"],
    )
    .await;
    let mut stalled = open(&server, watch_request("", None)).await;
    let mut fast = open(&server, watch_request("", None)).await;
    // A fresh tenant: the writes take revisions 1..=DOCUMENTS.
    let last = DOCUMENTS as i64;
    // A watcher that keeps up, reading while the writes happen: once it has
    // seen the last change, the feed has published them all (12 MB in about
    // 13 events, far below 1024 events).
    let keeps_up = tokio::spawn(async move { drain(&mut fast, last).await });
    let mut client = server.client().await;
    let big = "x".repeat(60 * 1024);
    for i in 0..DOCUMENTS {
        let owner = format!("u{i}");
        client
            .sync(&key(&owner), &write(1, "tab", json!({"pad": big})))
            .await
            .unwrap();
    }
    let (seen, error) = keeps_up.await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seen.len(), DOCUMENTS);

    let (received, error) = drain(&mut stalled, last).await;
    let status = error.unwrap_or_else(|| {
        panic!(
            "the stalled watcher was never cut off; it received all {} changes",
            received.len()
        )
    });
    let resume_after = received.last().copied().unwrap_or(last - DOCUMENTS as i64);
    assert_refused(
        &status,
        Code::ResourceExhausted,
        &format!("resume with after_revision = {resume_after}"),
    );
    assert!(received.len() < DOCUMENTS, "{}", received.len());
    let mut resumed = client
        .raw()
        .watch(watch_request("", Some(resume_after)))
        .await
        .unwrap()
        .into_inner();
    let (rest, error) = drain(&mut resumed, last).await;
    assert!(error.is_none(), "{error:?}");
    let all: Vec<i64> = received.into_iter().chain(rest).collect();
    let expected: Vec<i64> = (last - DOCUMENTS as i64 + 1..=last).collect();
    assert_eq!(all, expected, "every change once, in order");
}

/// With pages of two changes, a replay of seven must read four pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_longer_than_a_page_arrives_whole_and_in_order() {
    let server = TestServer::start_with(
        Backend::Postgres,
        &[
            "--watch-buffer-bytes",
            "131072",
            "--max-document-bytes",
            "65536",
        ],
    )
    .await;
    let mut client = server.client().await;
    let mut written = Vec::new();
    for i in 0..7u64 {
        let reply = client
            .sync(&key(&format!("u{i}")), &write(1, "tab", json!({"i": i})))
            .await
            .unwrap();
        written.push(reply.document);
    }
    let mut stream = client
        .raw()
        .watch(watch_request("", Some(0)))
        .await
        .unwrap()
        .into_inner();
    let mut replayed = Vec::new();
    loop {
        match next_event(&mut stream).await {
            Event::Change(document) => replayed.push(Document::try_from(document).unwrap()),
            Event::Progress(progress) => {
                assert_eq!(progress.revision, written[6].revision);
                break;
            }
        }
    }
    assert_eq!(
        replayed, written,
        "the whole history before the first progress"
    );
}
