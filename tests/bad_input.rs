//! Every kind of bad input gets a clear status and changes nothing.

use serde_json::json;
use settings_sync_proto::v1;
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::{Backend, TestServer};
use tonic::Code;

fn sync(tenant: &str, owner: &str, value_json: &str, clock: u64, writer: &str) -> v1::SyncRequest {
    v1::SyncRequest {
        key: Some(v1::DocumentKey {
            tenant: tenant.into(),
            owner: owner.into(),
            name: "alerts".into(),
        }),
        value_json: value_json.into(),
        stamp: Some(v1::Stamp {
            clock,
            writer: writer.into(),
        }),
    }
}

fn ok(value_json: &str, clock: u64) -> v1::SyncRequest {
    sync("acme", "alice", value_json, clock, "tab-x")
}

/// (case, request, expected status).
fn bad_syncs() -> Vec<(&'static str, v1::SyncRequest, Code)> {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(33), "}".repeat(33));
    vec![
        (
            "no key",
            v1::SyncRequest {
                key: None,
                ..ok("{}", 9)
            },
            Code::InvalidArgument,
        ),
        (
            "no stamp",
            v1::SyncRequest {
                stamp: None,
                ..ok("{}", 9)
            },
            Code::InvalidArgument,
        ),
        (
            "empty tenant",
            sync("", "alice", "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        (
            "empty owner",
            sync("acme", "", "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        (
            "slash in owner",
            sync("acme", "al/ice", "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        (
            "NUL in owner",
            sync("acme", "ali\0ce", "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        (
            "non-ASCII owner",
            sync("acme", "alicé", "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        (
            "owner over 128 bytes",
            sync("acme", &"a".repeat(129), "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        (
            "SQL in tenant",
            sync("acme'; DROP TABLE documents;--", "alice", "{}", 9, "tab-x"),
            Code::InvalidArgument,
        ),
        ("clock 0", ok("{}", 0), Code::InvalidArgument),
        (
            "clock above i64::MAX",
            ok("{}", i64::MAX as u64 + 1),
            Code::InvalidArgument,
        ),
        ("clock u64::MAX", ok("{}", u64::MAX), Code::InvalidArgument),
        (
            "empty writer",
            sync("acme", "alice", "{}", 9, ""),
            Code::InvalidArgument,
        ),
        (
            "space in writer",
            sync("acme", "alice", "{}", 9, "tab x"),
            Code::InvalidArgument,
        ),
        (
            "writer over 64 bytes",
            sync("acme", "alice", "{}", 9, &"w".repeat(65)),
            Code::InvalidArgument,
        ),
        ("empty value", ok("", 9), Code::InvalidArgument),
        ("array value", ok("[1]", 9), Code::InvalidArgument),
        ("string value", ok("\"on\"", 9), Code::InvalidArgument),
        ("number value", ok("42", 9), Code::InvalidArgument),
        ("truncated JSON", ok(r#"{"a":"#, 9), Code::InvalidArgument),
        ("trailing garbage", ok("{} {}", 9), Code::InvalidArgument),
        (
            "nesting past the limit",
            ok(&deep, 9),
            Code::InvalidArgument,
        ),
        (
            "value over 64 KiB",
            ok(&format!(r#"{{"a":"{}"}}"#, "x".repeat(64 * 1024)), 9),
            Code::ResourceExhausted,
        ),
        (
            "a megabyte of brackets",
            ok(&"[".repeat(1 << 20), 9),
            Code::ResourceExhausted,
        ),
        (
            "same stamp, other content",
            ok(r#"{"other":true}"#, 5),
            Code::FailedPrecondition,
        ),
        (
            "clock jump past the limit",
            ok("{}", 5 + 1_000_001),
            Code::FailedPrecondition,
        ),
    ]
}

async fn check_bad_input_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    // The seeded document: stamp (5, tab-x).
    let seeded = client
        .sync(
            &key("alice"),
            &write(5, "tab-x", json!({"airports": ["SEA"]})),
        )
        .await
        .unwrap();
    let raw = client.raw();

    let mut failures = Vec::new();
    for (case, request, expected) in bad_syncs() {
        match raw.sync(request).await {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(status) if status.code() != expected => failures.push(format!(
                "{case}: {:?} ({}), expected {expected:?}",
                status.code(),
                status.message()
            )),
            Err(status) => assert!(
                !status.message().is_empty(),
                "{case}: the status explains itself"
            ),
        }
    }

    let bad_key = |owner: &str| {
        Some(v1::DocumentKey {
            tenant: "acme".into(),
            owner: owner.into(),
            name: "alerts".into(),
        })
    };
    let get_cases = [
        ("get without key", None),
        ("get with bad owner", bad_key("a b")),
    ];
    for (case, key) in get_cases {
        let status = raw.get(v1::GetRequest { key }).await.unwrap_err();
        if status.code() != Code::InvalidArgument {
            failures.push(format!("{case}: {:?}", status.code()));
        }
    }
    let status = raw
        .get(v1::GetRequest {
            key: bad_key("nobody"),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let too_many = v1::BatchGetRequest {
        keys: (0..101).map(|i| (&key(&format!("u{i}"))).into()).collect(),
    };
    assert_eq!(
        raw.batch_get(too_many).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let query = |contains: &str, page_size: i32, token: &str| v1::QueryRequest {
        tenant: "acme".into(),
        name: "alerts".into(),
        contains_json: contains.into(),
        page_size,
        page_token: token.into(),
    };
    for (case, request) in [
        ("query with array filter", query("[]", 0, "")),
        ("query with bad JSON", query("{", 0, "")),
        ("query with negative page size", query("{}", -1, "")),
        ("query with page size over 1000", query("{}", 1001, "")),
        ("query with forged token", query("{}", 0, "not a token!")),
        (
            "query with empty tenant",
            v1::QueryRequest {
                tenant: String::new(),
                ..query("{}", 0, "")
            },
        ),
    ] {
        match raw.query(request).await {
            Err(status) if status.code() == Code::InvalidArgument => {}
            other => failures.push(format!("{case}: {:?}", other.map(|_| "accepted"))),
        }
    }

    assert!(
        failures.is_empty(),
        "bad input was mishandled:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        client.get(&key("alice")).await.unwrap(),
        Some(seeded.document),
        "nothing changed"
    );
    let all = client.query("acme", "alerts", "{}", 0, None).await.unwrap();
    assert_eq!(all.documents.len(), 1, "no document was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_changes_nothing_in_sqlite() {
    check_bad_input_changes_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_changes_nothing_in_postgres() {
    check_bad_input_changes_nothing(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_cap_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = server.client().await;
    let huge = ok(&format!(r#"{{"a":"{}"}}"#, "x".repeat(5 << 20)), 9);
    let status = client.raw().sync(huge).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    assert_eq!(client.get(&key("alice")).await.unwrap(), None);
}
