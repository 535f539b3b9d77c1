//! Differential test: both stores take the same value texts and give them
//! back alike. Random JSON texts — edge strings and escapes (`\u0000`, lone
//! surrogates, raw control characters), numbers PostgreSQL prints in
//! another form (`1e17`, `-0.0`, past u64), nesting around the depth limit,
//! repeated keys — are sent as a `Sync` value and as a `Query` filter to a
//! real server on SQLite and one on PostgreSQL. For each text both must
//! accept it or refuse it with the same code; an accepted value must come
//! back as the same text from the `Sync`, from a `Get`, and a retry of the
//! same write must be UNCHANGED on both; a filter must find the same owners.

use rand::prelude::*;
use settings_sync_client::Client;
use settings_sync_proto::v1;
use settings_sync_tests::{Backend, TestServer};

const CASES: usize = 300;

/// String literals as a client may write them, valid or not.
const STRINGS: &[&str] = &[
    r#""""#,
    r#""SEA""#,
    r#""\u0000""#,
    r#""a\u0000b""#,
    r#""\u0001""#,
    r#""\u001f""#,
    r#""\t\n\r\b\f""#,
    r#""\"\\\/""#,
    r#""\ud83d\ude00""#,
    "\"\u{1F600}\"",
    r#""\ud800""#,
    r#""\udc00x""#,
    "\"é\"",
    r#""\u00e9""#,
    r#""\u2028\u2029""#,
    r#""\uffff""#,
    "\"\u{7f}\"",
    "\"raw\ttab\"",
    r#""\x""#,
];

/// Number spellings, valid or not.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "-0.0",
    "1",
    "1.0",
    "1e0",
    "1E+2",
    "1e-7",
    "1e-320",
    "1e-400",
    "9999999999999998",
    "1e16",
    "1.5e16",
    "1e17",
    "-1e17",
    "1.152921504606847e18",
    "18446744073709551615",
    "18446744073709551616",
    "2e19",
    "-9223372036854775808",
    "-9223372036854775809",
    "-9.3e18",
    "9900000000000000000000000000000009",
    "1.7976931348623157e308",
    "1e309",
    "01",
    "1.",
    ".5",
    "+1",
    "NaN",
];

fn scalar(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0..=3 => NUMBERS.choose(rng).expect("numbers").to_string(),
        4..=7 => STRINGS.choose(rng).expect("strings").to_string(),
        8 => ["true", "false"].choose(rng).expect("booleans").to_string(),
        _ => "null".to_string(),
    }
}

fn any(rng: &mut StdRng, depth: u32) -> String {
    match rng.random_range(0..if depth == 0 { 1 } else { 4 }) {
        0 | 1 => scalar(rng),
        2 => {
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| any(rng, depth - 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => object(rng, depth - 1),
    }
}

fn object(rng: &mut StdRng, depth: u32) -> String {
    let members: Vec<String> = (0..rng.random_range(0..4))
        .map(|_| {
            // Few keys, so repeated keys are common.
            let key = *[r#""a""#, r#""b""#, r#""\u0000""#, r#""é""#]
                .choose(rng)
                .expect("keys");
            format!("{key}:{}", any(rng, depth))
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

/// `inner` under `levels` more objects: depths around the limit of 32.
fn nested(levels: usize, inner: &str) -> String {
    format!("{}{inner}{}", r#"{"d":"#.repeat(levels), "}".repeat(levels))
}

fn value_text(rng: &mut StdRng) -> String {
    if rng.random_bool(0.05) {
        let inner = object(rng, 0);
        return nested(rng.random_range(29..=32), &inner);
    }
    object(rng, 3)
}

fn sync_request(owner: &str, value_json: &str) -> v1::SyncRequest {
    v1::SyncRequest {
        key: Some(v1::DocumentKey {
            tenant: "diff".into(),
            owner: owner.into(),
            name: "values".into(),
        }),
        value_json: value_json.into(),
        stamp: Some(v1::Stamp {
            clock: 1,
            writer: "w".into(),
        }),
        ..Default::default()
    }
}

/// What one server made of one text, as comparable text.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    sync: Result<String, tonic::Code>,
    retry: Option<Result<i32, tonic::Code>>,
    get: Option<Result<String, tonic::Code>>,
    query: Result<Vec<String>, tonic::Code>,
}

async fn run(client: &mut Client, owner: &str, text: &str) -> Seen {
    let raw = client.raw();
    let sync = raw
        .sync(sync_request(owner, text))
        .await
        .map(|r| value_of(r.into_inner().document))
        .map_err(|s| s.code());
    let (retry, get) = if sync.is_ok() {
        let retry = raw
            .sync(sync_request(owner, text))
            .await
            .map(|r| r.into_inner().decision)
            .map_err(|s| s.code());
        let get = raw
            .get(v1::GetRequest {
                key: sync_request(owner, text).key,
            })
            .await
            .map(|r| value_of(r.into_inner().document))
            .map_err(|s| s.code());
        (Some(retry), Some(get))
    } else {
        (None, None)
    };
    let query = raw
        .query(v1::QueryRequest {
            tenant: "diff".into(),
            name: "values".into(),
            contains_json: text.into(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .map(|r| {
            let mut owners: Vec<String> = r
                .into_inner()
                .documents
                .into_iter()
                .filter_map(|d| d.key.map(|k| k.owner))
                .collect();
            owners.sort();
            owners
        })
        .map_err(|s| s.code());
    Seen {
        sync,
        retry,
        get,
        query,
    }
}

fn value_of(document: Option<v1::Document>) -> String {
    document.map(|d| d.value_json).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_text_is_taken_or_refused_alike_and_reads_back_identically_on_both_stores() {
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let sqlite = TestServer::start(Backend::Sqlite).await;
    let postgres = TestServer::start(Backend::Postgres).await;
    let (mut on_sqlite_client, mut on_postgres_client) =
        (sqlite.client().await, postgres.client().await);
    let (mut accepted, mut refused, mut differences) = (0, 0, Vec::new());
    for case in 0..CASES {
        let text = value_text(&mut rng);
        let owner = format!("case-{case}");
        let on_sqlite = run(&mut on_sqlite_client, &owner, &text).await;
        let on_postgres = run(&mut on_postgres_client, &owner, &text).await;
        match on_sqlite.sync {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        if on_sqlite != on_postgres {
            differences.push(format!(
                "{text}\n  SQLite:     {on_sqlite:?}\n  PostgreSQL: {on_postgres:?}"
            ));
        }
    }
    println!("{accepted} accepted, {refused} refused by both stores alike");
    assert!(
        differences.is_empty(),
        "{} of {CASES} texts differ (seed {seed}), first:\n{}",
        differences.len(),
        differences[..differences.len().min(5)].join("\n")
    );
    assert!(
        accepted > CASES / 5 && refused > CASES / 5,
        "the generator should give both verdicts often: {accepted} accepted, {refused} refused"
    );
}

/// The case of issue 16: a NUL escape, as a value and as a filter, is
/// refused as bad input by both stores and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_escape_is_refused_as_invalid_argument_by_both_stores() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let server = TestServer::start(backend).await;
        let mut client = server.client().await;
        let raw = client.raw();
        let status = raw
            .sync(sync_request("alice", r#"{"a":"\u0000"}"#))
            .await
            .expect_err("a NUL escape must be refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{backend:?}");
        assert!(status.message().contains("U+0000"), "{}", status.message());
        let get = raw
            .get(v1::GetRequest {
                key: sync_request("alice", "{}").key,
            })
            .await
            .expect_err("nothing was stored");
        assert_eq!(get.code(), tonic::Code::NotFound, "{backend:?}");
        let status = raw
            .query(v1::QueryRequest {
                tenant: "diff".into(),
                name: "values".into(),
                contains_json: r#"{"a":"\u0000"}"#.into(),
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .expect_err("a NUL escape in a filter must be refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{backend:?}");
    }
}
