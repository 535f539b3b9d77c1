//! gRPC-Web on the gRPC port, as browsers call it over HTTP/1.1: unary
//! calls and the Watch stream from an allowed origin, errors a page can
//! read, preflights, and origins that get no CORS headers at all.

use http::StatusCode;
use serde_json::json;
use settings_sync_proto::v1;
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::grpc_web::{self, Call, Frame, cors_headers};
use settings_sync_tests::tokens::{Tokens, strs};
use settings_sync_tests::{Backend, TestServer};

const PAGE: &str = "http://localhost:5173";

async fn start(tokens: &Tokens, origins: &[&str]) -> TestServer {
    let mut flags = tokens.flags();
    for origin in origins {
        flags.extend(["--cors-allowed-origin".to_string(), origin.to_string()]);
    }
    TestServer::start_with(Backend::Sqlite, &strs(&flags)).await
}

fn sync_request(owner: &str, clock: u64, value: serde_json::Value) -> v1::SyncRequest {
    v1::SyncRequest {
        key: Some((&key(owner)).into()),
        value_json: value.to_string(),
        stamp: Some((&write(clock, "w-page", json!({})).stamp).into()),
        ..Default::default()
    }
}

fn from_page(tokens: &Tokens, owner: &str) -> Call {
    Call {
        origin: Some(PAGE.to_string()),
        token: Some(tokens.user("acme", owner)),
        headers: vec![],
    }
}

#[track_caller]
fn assert_readable_by_the_page(headers: &http::HeaderMap) {
    assert_eq!(headers["access-control-allow-origin"], PAGE);
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(name), "{name} is not exposed: {exposed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_the_allow_list_syncs_and_reads_over_grpc_web() {
    let tokens = Tokens::new();
    let server = start(&tokens, &[PAGE]).await;
    let call = from_page(&tokens, "alice");

    let synced = grpc_web::unary(
        server.addr,
        "Sync",
        &call,
        &sync_request("alice", 1, json!({"airports": ["SEA"]})),
    )
    .await;
    assert_eq!(synced.status, StatusCode::OK);
    assert_readable_by_the_page(&synced.headers);
    assert_eq!(synced.grpc_status().as_deref(), Some("0"));
    let reply: v1::SyncResponse = synced.message();
    assert_eq!(reply.decision, v1::Decision::Applied as i32);

    let read = grpc_web::unary(
        server.addr,
        "Get",
        &call,
        &v1::GetRequest {
            key: Some((&key("alice")).into()),
        },
    )
    .await;
    assert_eq!(read.grpc_status().as_deref(), Some("0"));
    let document = read.message::<v1::GetResponse>().document.unwrap();
    assert_eq!(document.value_json, r#"{"airports":["SEA"]}"#);
    // The same document a gRPC client reads: one store, two wire formats.
    let mut client = server.client().await;
    client
        .set_token(Some(&tokens.user("acme", "alice")))
        .unwrap();
    let stored = client.get(&key("alice")).await.unwrap().unwrap();
    assert_eq!(stored.state.stamp.clock.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_answered_trailers_only_with_their_status_exposed_to_the_page() {
    let tokens = Tokens::new();
    let server = start(&tokens, &[PAGE]).await;
    let body = sync_request("alice", 1, json!({}));

    // No token: refused before any handler, in the response headers.
    let anonymous = Call {
        origin: Some(PAGE.to_string()),
        ..Call::default()
    };
    let refused = grpc_web::unary(server.addr, "Sync", &anonymous, &body).await;
    assert_eq!(
        refused.headers["grpc-status"], "16",
        "{:?}",
        refused.headers
    );
    assert!(
        refused.frames.is_empty(),
        "trailers-only: {:?}",
        refused.frames
    );
    assert_readable_by_the_page(&refused.headers);

    // Another owner's document: PERMISSION_DENIED with its reason.
    let denied = grpc_web::unary(server.addr, "Sync", &from_page(&tokens, "bob"), &body).await;
    assert_eq!(denied.grpc_status().as_deref(), Some("7"));
    assert_readable_by_the_page(&denied.headers);

    // Bad input: INVALID_ARGUMENT, exactly as over gRPC.
    let mut bad = body.clone();
    bad.value_json = "[1, 2]".into();
    let invalid = grpc_web::unary(server.addr, "Sync", &from_page(&tokens, "alice"), &bad).await;
    assert_eq!(invalid.grpc_status().as_deref(), Some("3"));
    assert!(
        invalid
            .headers
            .get("grpc-message")
            .is_some_and(|m| !m.is_empty())
    );
    assert_readable_by_the_page(&invalid.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_from_an_allowed_origin_allows_the_grpc_web_headers() {
    let tokens = Tokens::new();
    let server = start(&tokens, &["http://other.test", PAGE]).await;
    let response = grpc_web::preflight(server.addr, PAGE).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], PAGE);
    assert_eq!(headers["access-control-allow-methods"], "POST");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    for name in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "traceparent",
    ] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    assert!(headers.get("access-control-allow-credentials").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_not_on_the_list_gets_no_cors_headers() {
    let tokens = Tokens::new();
    let server = start(&tokens, &[PAGE]).await;
    for origin in ["http://evil.test", "http://localhost:5174", "null"] {
        let response = grpc_web::preflight(server.addr, origin).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(cors_headers(response.headers()), vec![], "{origin}");

        let call = Call {
            origin: Some(origin.to_string()),
            ..from_page(&tokens, "alice")
        };
        let answered = grpc_web::unary(
            server.addr,
            "Sync",
            &call,
            &sync_request("alice", 1, json!({})),
        )
        .await;
        assert_eq!(cors_headers(&answered.headers), vec![], "{origin}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_origin_is_allowed_until_one_is_configured() {
    let tokens = Tokens::new();
    let server = start(&tokens, &[]).await;
    let response = grpc_web::preflight(server.addr, PAGE).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(cors_headers(response.headers()), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_to_a_page_as_they_happen() {
    let tokens = Tokens::new();
    let server = start(&tokens, &[PAGE]).await;
    let call = from_page(&tokens, "alice");
    let mut stream = grpc_web::start(
        server.addr,
        "Watch",
        &call,
        &v1::WatchRequest {
            tenant: "acme".into(),
            owner: "alice".into(),
            name: String::new(),
            after_revision: Some(0),
        },
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_readable_by_the_page(&stream.headers);

    // Each write is sent only after the previous change arrived, so the
    // stream is shown to deliver while it stays open.
    for clock in 1..=3 {
        let synced = grpc_web::unary(
            server.addr,
            "Sync",
            &call,
            &sync_request("alice", clock, json!({ "n": clock })),
        )
        .await;
        assert_eq!(synced.grpc_status().as_deref(), Some("0"));
        let change = loop {
            match stream.next().await.expect("the stream stays open") {
                Frame::Message(bytes) => {
                    let event: v1::WatchResponse = prost::Message::decode(bytes).unwrap();
                    if let Some(v1::watch_response::Event::Change(document)) = event.event {
                        break document;
                    }
                }
                Frame::Trailers(trailers) => panic!("the stream ended: {trailers:?}"),
            }
        };
        assert_eq!(change.stamp.unwrap().clock, clock);
        assert_eq!(change.value_json, json!({ "n": clock }).to_string());
    }
}
