//! Every kind of bad input gets a clear status and changes nothing.

use serde_json::json;
use settings_sync_proto::v1;
use settings_sync_protocol::fields::{Change, FieldOp, FieldWrite, Patch};
use settings_sync_protocol::{Clock, Decision, Stamp, WriterId};
use settings_sync_tests::fixtures::{assert_refused, key, write};
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
        ..Default::default()
    }
}

fn ok(value_json: &str, clock: u64) -> v1::SyncRequest {
    sync("acme", "alice", value_json, clock, "tab-x")
}

/// A patch of the seeded document at clock 9.
fn patch(edits: &[(&str, Option<v1::field_edit::Op>)]) -> v1::SyncRequest {
    let edits = (edits.iter())
        .map(|(field, op)| v1::FieldEdit {
            field: (*field).into(),
            op: op.clone(),
        })
        .collect();
    v1::SyncRequest {
        patch: Some(v1::FieldPatch { edits }),
        ..ok("", 9)
    }
}

fn set(json: &str) -> Option<v1::field_edit::Op> {
    Some(v1::field_edit::Op::SetJson(json.into()))
}

/// Bad per-field writes: refused at the edge like any bad value.
fn bad_patches() -> Vec<(&'static str, v1::SyncRequest, Code)> {
    let deep = format!("{}1{}", "[".repeat(32), "]".repeat(32));
    let names: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
    let many_deletes: Vec<(&str, Option<v1::field_edit::Op>)> = (names.iter())
        .map(|name| (name.as_str(), Some(v1::field_edit::Op::Delete(true))))
        .collect();
    vec![
        (
            "patch with a value too",
            v1::SyncRequest {
                value_json: "{}".into(),
                ..patch(&[("a", set("1"))])
            },
            Code::InvalidArgument,
        ),
        (
            "patch field without a name",
            patch(&[("", set("1"))]),
            Code::InvalidArgument,
        ),
        (
            "patch field name with NUL",
            patch(&[("a\0b", set("1"))]),
            Code::InvalidArgument,
        ),
        (
            "patch field name over 1 KiB",
            patch(&[(&"f".repeat(1025), set("1"))]),
            Code::InvalidArgument,
        ),
        (
            "patch field edited twice",
            patch(&[("a", set("1")), ("a", set("2"))]),
            Code::InvalidArgument,
        ),
        (
            "patch field without an edit",
            patch(&[("a", None)]),
            Code::InvalidArgument,
        ),
        (
            "patch delete = false",
            patch(&[("a", Some(v1::field_edit::Op::Delete(false)))]),
            Code::InvalidArgument,
        ),
        (
            "patch value not JSON",
            patch(&[("a", set("{"))]),
            Code::InvalidArgument,
        ),
        (
            "patch value empty",
            patch(&[("a", set(""))]),
            Code::InvalidArgument,
        ),
        (
            "patch value with NUL",
            patch(&[("a", set(r#""x\u0000""#))]),
            Code::InvalidArgument,
        ),
        (
            "patch value nesting past the limit",
            patch(&[("a", set(&deep))]),
            Code::InvalidArgument,
        ),
        (
            "patch over 64 KiB",
            patch(&[
                ("a", set(&format!(r#""{}""#, "x".repeat(40 * 1024)))),
                ("b", set(&format!(r#""{}""#, "x".repeat(40 * 1024)))),
            ]),
            Code::ResourceExhausted,
        ),
        (
            "patch of more than 1000 fields",
            patch(&many_deletes),
            Code::InvalidArgument,
        ),
        (
            "patch with clock 0",
            v1::SyncRequest {
                stamp: Some(v1::Stamp {
                    clock: 0,
                    writer: "tab-x".into(),
                }),
                ..patch(&[("a", set("1"))])
            },
            Code::InvalidArgument,
        ),
        (
            "per-field whole write that is not an object",
            v1::SyncRequest {
                per_field: true,
                ..ok("[1]", 9)
            },
            Code::InvalidArgument,
        ),
        (
            "patch at the seeded stamp with other content",
            v1::SyncRequest {
                stamp: Some(v1::Stamp {
                    clock: 5,
                    writer: "tab-x".into(),
                }),
                ..patch(&[("airports", set(r#"["SFO"]"#))])
            },
            Code::FailedPrecondition,
        ),
        (
            "patch with a clock jump past the limit",
            v1::SyncRequest {
                stamp: Some(v1::Stamp {
                    clock: 5 + 1_000_001,
                    writer: "tab-x".into(),
                }),
                ..patch(&[("a", set("1"))])
            },
            Code::FailedPrecondition,
        ),
    ]
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
    for (case, request, expected) in bad_syncs().into_iter().chain(bad_patches()) {
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

    let list =
        |key: Option<v1::DocumentKey>, page_size: i32, token: &str| v1::ListOverridesRequest {
            key,
            page_size,
            page_token: token.into(),
        };
    let alice = Some((&key("alice")).into());
    let query_token = settings_sync::api::query::page_token(
        &settings_sync_protocol::Id::parse("owner", "alice").unwrap(),
    );
    for (case, request) in [
        ("list overrides without key", list(None, 0, "")),
        ("list overrides with bad owner", list(bad_key("a b"), 0, "")),
        (
            "list overrides with negative page size",
            list(alice.clone(), -1, ""),
        ),
        (
            "list overrides with page size over 100",
            list(alice.clone(), 101, ""),
        ),
        (
            "list overrides with forged token",
            list(alice.clone(), 0, "not a token!"),
        ),
        (
            "list overrides with a Query token",
            list(alice.clone(), 0, &query_token),
        ),
    ] {
        match raw.list_overrides(request).await {
            Err(status) if status.code() == Code::InvalidArgument => {}
            other => failures.push(format!("{case}: {:?}", other.map(|_| "accepted"))),
        }
    }

    assert!(
        failures.is_empty(),
        "bad input was mishandled:\n{}",
        failures.join("\n")
    );
    let log = client.list_overrides(&key("alice"), 0, None).await.unwrap();
    assert!(
        log.overrides.is_empty(),
        "a refused write recorded nothing: {log:?}"
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

/// Sends bytes as they are: requests no generated client would build.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawBytes;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let len = bytes::Buf::remaining(buf);
        Ok(Some(bytes::Buf::copy_to_bytes(buf, len).to_vec()))
    }
}

/// A length-delimited protobuf field (wire type 2), short enough for a
/// one-byte length.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 128);
    let mut out = vec![number << 3 | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

fn raw_key(tenant: &[u8], owner: &[u8]) -> Vec<u8> {
    [field(1, tenant), field(2, owner), field(3, b"alerts")].concat()
}

fn raw_sync(owner: &[u8], value: &[u8], writer: &[u8]) -> Vec<u8> {
    let stamp = [vec![1 << 3, 9], field(2, writer)].concat(); // clock 9
    [
        field(1, &raw_key(b"acme", owner)),
        field(2, value),
        field(3, &stamp),
    ]
    .concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_and_invalid_utf8_are_invalid_argument_and_change_nothing() {
    const NOT_UTF8: &[u8] = b"al\xff\xfeice";
    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = server.client().await;
    let seeded = client
        .sync(
            &key("alice"),
            &write(5, "tab-x", json!({"airports": ["SEA"]})),
        )
        .await
        .unwrap();
    let sync = "/settingssync.v1.SettingsSync/Sync";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "well-formed control",
            sync,
            raw_sync(b"alice", b"{}", b"tab-y"),
        ),
        (
            "invalid UTF-8 owner",
            sync,
            raw_sync(NOT_UTF8, b"{}", b"tab-z"),
        ),
        (
            "invalid UTF-8 writer",
            sync,
            raw_sync(b"alice", b"{}", NOT_UTF8),
        ),
        (
            "invalid UTF-8 value",
            sync,
            raw_sync(b"alice", b"{\"a\":\"\xc3\x28\"}", b"tab-z"),
        ),
        (
            "overlong UTF-8 NUL in owner",
            sync,
            raw_sync(b"al\xc0\x80ice", b"{}", b"tab-z"),
        ),
        (
            "UTF-16 surrogate in owner",
            sync,
            raw_sync(b"al\xed\xa0\x80ice", b"{}", b"tab-z"),
        ),
        ("truncated field", sync, vec![0x0a, 50, b'a', b'c']),
        ("varint without end", sync, vec![0x08, 0xff, 0xff, 0xff]),
        ("wire type 7", sync, vec![0x0f, 0x00]),
        (
            "invalid UTF-8 in Get",
            "/settingssync.v1.SettingsSync/Get",
            field(1, &raw_key(b"ac\xffme", b"alice")),
        ),
        (
            "invalid UTF-8 in BatchGet",
            "/settingssync.v1.SettingsSync/BatchGet",
            field(1, &raw_key(b"acme", NOT_UTF8)),
        ),
        (
            "invalid UTF-8 in Query",
            "/settingssync.v1.SettingsSync/Query",
            [
                field(1, b"acme"),
                field(2, b"alerts"),
                field(3, b"{\"\xff\":1}"),
            ]
            .concat(),
        ),
    ];
    let mut grpc =
        tonic::client::Grpc::new(settings_sync_tests::server::channel(&server.endpoint()).await);
    let mut failures = Vec::new();
    for (case, path, bytes) in cases {
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(path);
        let result = grpc.unary(tonic::Request::new(bytes), path, RawCodec).await;
        match (case, result) {
            ("well-formed control", Ok(_)) => {}
            (_, Err(status)) if status.code() == Code::InvalidArgument => {}
            (case, other) => failures.push(format!("{case}: {:?}", other.map(|_| "accepted"))),
        }
    }
    // Watch streams: the status arrives as the call's answer.
    let watch = [field(1, b"ac\xffme")].concat();
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/settingssync.v1.SettingsSync/Watch");
    match grpc
        .server_streaming(tonic::Request::new(watch), path, RawCodec)
        .await
    {
        Err(status) if status.code() == Code::InvalidArgument => {}
        Err(status) => failures.push(format!("invalid UTF-8 in Watch: {status:?}")),
        Ok(mut stream) => match stream.get_mut().message().await {
            Err(status) if status.code() == Code::InvalidArgument => {}
            other => failures.push(format!("invalid UTF-8 in Watch: {other:?}")),
        },
    }
    assert!(
        failures.is_empty(),
        "undecodable input was mishandled:\n{}",
        failures.join("\n")
    );
    let stored = client.get(&key("alice")).await.unwrap().unwrap();
    assert_eq!(
        stored.state.stamp.writer.as_str(),
        "tab-y",
        "only the control write applied"
    );
    assert!(stored.revision > seeded.document.revision);
    let all = client.query("acme", "alerts", "{}", 0, None).await.unwrap();
    assert_eq!(all.documents.len(), 1, "no document was created");
}

/// A per-field write with `fields` set (to a string of `len` bytes) or
/// deleted (`len` None), at `clock` by `tab-y`.
fn field_write(clock: u64, fields: &[(&str, Option<usize>)]) -> FieldWrite {
    let patch: Patch = (fields.iter())
        .map(|(name, len)| {
            let op = len.map_or(FieldOp::Delete, |n| FieldOp::Set(json!("x".repeat(n))));
            ((*name).to_owned(), op)
        })
        .collect();
    FieldWrite {
        stamp: Stamp::new(
            Clock::new(clock).unwrap(),
            WriterId::parse("tab-y").unwrap(),
        ),
        change: Change::Patch(patch),
    }
}

/// Each patch is within --max-document-bytes, but the merged document
/// would not be: refused with the status of a value over the limit,
/// changing nothing; a write that stays within it still applies; field
/// tombstones count. Concurrent writes (combined into one statement on
/// PostgreSQL, `--batch-window-us`) are each judged on their own.
async fn check_stored_size_cap(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &["--max-document-bytes", "1000", "--batch-window-us", "20000"],
    )
    .await;
    let mut client = server.client().await;
    let alice = key("alice");
    for (clock, name) in [(1, "a"), (2, "b")] {
        let reply = client
            .sync_fields(&alice, &field_write(clock, &[(name, Some(400))]))
            .await
            .unwrap();
        assert_eq!(reply.report.decision, Decision::Applied);
    }
    let before = client.get(&alice).await.unwrap().unwrap();
    // {"a":"…400…","b":"…400…"} is 817 bytes; a third field of 400 is not.
    let status = client
        .sync_fields(&alice, &field_write(3, &[("c", Some(400))]))
        .await
        .unwrap_err();
    let settings_sync_client::Error::Status(status) = status else {
        panic!("a status: {status}");
    };
    assert_refused(
        &status,
        Code::ResourceExhausted,
        "more than the limit of 1000",
    );
    assert_eq!(
        client.get(&alice).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );

    // Deleting 9 fields of 50-byte names: 9 × (50 + 64) bytes of tombstones.
    let names: Vec<String> = (0..9).map(|i| format!("{i:0>50}")).collect();
    let deletes: Vec<(&str, Option<usize>)> = names.iter().map(|n| (n.as_str(), None)).collect();
    let status = client
        .sync_fields(&key("bob"), &field_write(1, &deletes))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Some(Code::ResourceExhausted), "{status}");
    assert_eq!(
        client.get(&key("bob")).await.unwrap(),
        None,
        "nothing created"
    );

    // At once: too large, small enough, and another document's.
    let (mut c1, mut c2, mut c3) = (client.clone(), client.clone(), client.clone());
    let (big, small, other) = (key("alice"), key("alice"), key("carol"));
    let (big, small, other) = tokio::join!(
        async move {
            c1.sync_fields(&big, &field_write(4, &[("c", Some(400))]))
                .await
        },
        async move {
            c2.sync_fields(&small, &field_write(5, &[("d", Some(10))]))
                .await
        },
        async move {
            c3.sync_fields(&other, &field_write(1, &[("a", Some(400))]))
                .await
        },
    );
    assert_eq!(big.unwrap_err().code(), Some(Code::ResourceExhausted));
    assert_eq!(small.unwrap().report.decision, Decision::Applied);
    assert_eq!(other.unwrap().report.decision, Decision::Applied);
    let stored = client.get(&alice).await.unwrap().unwrap();
    let fields: Vec<&String> = stored.state.value.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["a", "b", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_would_grow_a_document_past_the_limit_is_refused_in_sqlite() {
    check_stored_size_cap(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_would_grow_a_document_past_the_limit_is_refused_in_postgres() {
    check_stored_size_cap(Backend::Postgres).await;
}
