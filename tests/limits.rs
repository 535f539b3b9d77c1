//! Abuse limits over gRPC: per-identity rate limits, the cap on open Watch
//! streams (and its release when a stream ends), and the message size cap.

use std::time::{Duration, Instant};

use serde_json::json;
use settings_sync_client::Client;
use settings_sync_proto::v1;
use settings_sync_tests::fixtures::{assert_refused, key, write};
use settings_sync_tests::tokens::{Tokens, strs};
use settings_sync_tests::{Backend, TestServer};
use tonic::Code;

/// Gets of `owner`'s document (never written: NOT_FOUND is an answer)
/// until one is refused: how many were answered, and the refusal.
async fn gets_until_refused(
    client: &mut Client,
    owner: &str,
    attempts: usize,
) -> (usize, Option<tonic::Status>) {
    for done in 0..attempts {
        if let Err(status) = client
            .raw()
            .get(v1::GetRequest {
                key: Some((&key(owner)).into()),
            })
            .await
            && status.code() != Code::NotFound
        {
            return (done, Some(status));
        }
    }
    (attempts, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_over_its_rate_gets_resource_exhausted_and_others_do_not() {
    let tokens = Tokens::new();
    let mut flags = tokens.flags();
    // 0.01/s: no token comes back while the test runs.
    flags.extend(["--rate-limit-per-second", "0.01", "--rate-limit-burst", "5"].map(String::from));
    let server = TestServer::start_with(Backend::Sqlite, &strs(&flags)).await;
    let mut alice = server
        .client()
        .await
        .with_token(&tokens.user("acme", "alice"))
        .unwrap();
    let (allowed, refusal) = gets_until_refused(&mut alice, "alice", 20).await;
    assert_eq!(allowed, 5, "the burst");
    let refusal = refusal.expect("refused after the burst");
    assert_refused(&refusal, Code::ResourceExhausted, "rate limit");
    // Another subject has its own bucket, though it calls from the same address.
    let mut bob = server
        .client()
        .await
        .with_token(&tokens.user("acme", "bob"))
        .unwrap();
    let (allowed, _) = gets_until_refused(&mut bob, "bob", 3).await;
    assert_eq!(allowed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_the_rate_limit_is_per_peer_address_and_refills() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &["--rate-limit-per-second", "20", "--rate-limit-burst", "2"],
    )
    .await;
    let mut client = server.client().await;
    let (allowed, refusal) = gets_until_refused(&mut client, "alice", 10).await;
    assert!(
        allowed >= 2 && refusal.is_some(),
        "{allowed} then {refusal:?}"
    );
    // Refilled at 20/s: wait for the condition, not a fixed time.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (allowed, _) = gets_until_refused(&mut client, "alice", 1).await;
        if allowed == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the bucket never refilled");
        tokio::task::yield_now().await;
    }
}

fn watch(owner: &str) -> v1::WatchRequest {
    v1::WatchRequest {
        tenant: "acme".into(),
        owner: owner.into(),
        name: String::new(),
        after_revision: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_beyond_the_cap_are_refused_until_one_ends() {
    let tokens = Tokens::new();
    let mut flags = tokens.flags();
    flags.extend(["--max-watch-streams-per-identity", "2"].map(String::from));
    let server = TestServer::start_with(Backend::Sqlite, &strs(&flags)).await;
    let mut alice = server
        .client()
        .await
        .with_token(&tokens.user("acme", "alice"))
        .unwrap();
    let first = alice
        .raw()
        .watch(watch("alice"))
        .await
        .unwrap()
        .into_inner();
    let second = alice
        .raw()
        .watch(watch("alice"))
        .await
        .unwrap()
        .into_inner();
    let refused = alice.raw().watch(watch("alice")).await.unwrap_err();
    assert_refused(&refused, Code::ResourceExhausted, "at most 2 Watch streams");

    // Another identity is not affected.
    let mut bob = server
        .client()
        .await
        .with_token(&tokens.user("acme", "bob"))
        .unwrap();
    let _bobs = bob.raw().watch(watch("bob")).await.unwrap();

    // The slot comes back once the server sees the stream cancelled.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let third = loop {
        match alice.raw().watch(watch("alice")).await {
            Ok(stream) => break stream.into_inner(),
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    Instant::now() < deadline,
                    "the ended stream's slot was never released"
                );
                tokio::task::yield_now().await;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    };
    // And the cap still holds with the new stream open.
    assert_eq!(
        alice.raw().watch(watch("alice")).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    drop((second, third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_configured_message_size_is_refused() {
    let server = TestServer::start_with(Backend::Sqlite, &["--max-message-bytes", "1024"]).await;
    let mut client = server.client().await;
    let big = write(1, "tab", json!({"pad": "x".repeat(2048)}));
    let error = client.sync(&key("alice"), &big).await.unwrap_err();
    assert!(
        matches!(
            error.code(),
            Some(Code::ResourceExhausted | Code::OutOfRange)
        ),
        "{error}"
    );
    client
        .sync(&key("alice"), &write(1, "tab", json!({"small": true})))
        .await
        .unwrap();
}
