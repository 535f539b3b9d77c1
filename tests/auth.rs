//! Authentication and authorization over gRPC: who may call, and on which
//! documents. Every refusal gets its exact status and changes nothing.

use std::collections::BTreeMap;

use serde_json::json;
use settings_sync_client::Client;
use settings_sync_proto::v1;
use settings_sync_protocol::{Document, DocumentKey};
use settings_sync_tests::fixtures::{assert_refused, write};
use settings_sync_tests::server::serve_args;
use settings_sync_tests::tokens::{Tokens, strs};
use settings_sync_tests::{Backend, TestServer};
use tonic::Code;

fn key(tenant: &str, owner: &str) -> DocumentKey {
    DocumentKey::parse(tenant, owner, "alerts").unwrap()
}

async fn start(tokens: &Tokens) -> TestServer {
    TestServer::start_with(Backend::Sqlite, &strs(&tokens.flags())).await
}

async fn client(server: &TestServer, token: &str) -> Client {
    server.client().await.with_token(token).unwrap()
}

/// The four documents every case may touch, keyed by "tenant/owner".
async fn seed(server: &TestServer, tokens: &Tokens) -> BTreeMap<String, Document> {
    let mut documents = BTreeMap::new();
    for tenant in ["acme", "globex"] {
        let mut service = client(server, &tokens.service(tenant, "seeder")).await;
        for owner in ["alice", "bob"] {
            let reply = service
                .sync(
                    &key(tenant, owner),
                    &write(5, "seed", json!({"airports": ["SEA"]})),
                )
                .await
                .unwrap();
            documents.insert(format!("{tenant}/{owner}"), reply.document);
        }
    }
    documents
}

async fn snapshot(server: &TestServer, tokens: &Tokens) -> BTreeMap<String, Document> {
    let mut documents = BTreeMap::new();
    for tenant in ["acme", "globex"] {
        let mut service = client(server, &tokens.service(tenant, "auditor")).await;
        for owner in ["alice", "bob"] {
            let document = service.get(&key(tenant, owner)).await.unwrap().unwrap();
            documents.insert(format!("{tenant}/{owner}"), document);
        }
    }
    documents
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    Sync,
    Get,
    ListOverrides,
    BatchGet,
    Query,
    WatchOwner,
    WatchTenant,
}

/// Makes `rpc` on the document (tenant, owner); Ok or the status code.
async fn call(client: &mut Client, rpc: Rpc, tenant: &str, owner: &str) -> Result<(), Code> {
    let target = key(tenant, owner);
    let raw = client.raw();
    let watch = |owner: &str| v1::WatchRequest {
        tenant: tenant.into(),
        owner: owner.into(),
        name: String::new(),
        after_revision: None,
    };
    let result = match rpc {
        Rpc::Sync => {
            let request = v1::SyncRequest {
                key: Some((&target).into()),
                value_json: r#"{"changed":true}"#.into(),
                stamp: Some(v1::Stamp {
                    clock: 6,
                    writer: "intruder".into(),
                }),
                ..Default::default()
            };
            raw.sync(request).await.map(drop)
        }
        Rpc::Get => raw
            .get(v1::GetRequest {
                key: Some((&target).into()),
            })
            .await
            .map(drop),
        Rpc::ListOverrides => raw
            .list_overrides(v1::ListOverridesRequest {
                key: Some((&target).into()),
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::BatchGet => raw
            .batch_get(v1::BatchGetRequest {
                keys: vec![(&target).into()],
            })
            .await
            .map(drop),
        Rpc::Query => raw
            .query(v1::QueryRequest {
                tenant: tenant.into(),
                name: "alerts".into(),
                contains_json: "{}".into(),
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::WatchOwner => raw.watch(watch(owner)).await.map(drop),
        Rpc::WatchTenant => raw.watch(watch("")).await.map(drop),
    };
    result.map_err(|status| {
        assert!(
            !status.message().is_empty(),
            "{rpc:?}: the status explains itself"
        );
        status.code()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_exactly_the_access_the_rules_give_and_refusals_change_nothing() {
    use Rpc::*;
    let tokens = Tokens::new();
    let server = start(&tokens).await;
    let mut documents = seed(&server, &tokens).await;
    let alice = tokens.user("acme", "alice");
    let service = tokens.service("acme", "svc-alerts");
    let ok = Ok(());
    let denied = Err(Code::PermissionDenied);
    // (case, token, target tenant, target owner, [(rpc, expected)])
    let table = [
        (
            "user, own document",
            &alice,
            "acme",
            "alice",
            [
                (Sync, ok),
                (Get, ok),
                (ListOverrides, ok),
                (BatchGet, ok),
                (Query, denied),
                (WatchOwner, ok),
                (WatchTenant, denied),
            ],
        ),
        (
            "user, other owner",
            &alice,
            "acme",
            "bob",
            [
                (Sync, denied),
                (Get, denied),
                (ListOverrides, denied),
                (BatchGet, denied),
                (Query, denied),
                (WatchOwner, denied),
                (WatchTenant, denied),
            ],
        ),
        (
            "user, other tenant",
            &alice,
            "globex",
            "alice",
            [
                (Sync, denied),
                (Get, denied),
                (ListOverrides, denied),
                (BatchGet, denied),
                (Query, denied),
                (WatchOwner, denied),
                (WatchTenant, denied),
            ],
        ),
        (
            "service, own tenant",
            &service,
            "acme",
            "bob",
            [
                (Sync, ok),
                (Get, ok),
                (ListOverrides, ok),
                (BatchGet, ok),
                (Query, ok),
                (WatchOwner, ok),
                (WatchTenant, ok),
            ],
        ),
        (
            "service, other tenant",
            &service,
            "globex",
            "bob",
            [
                (Sync, denied),
                (Get, denied),
                (ListOverrides, denied),
                (BatchGet, denied),
                (Query, denied),
                (WatchOwner, denied),
                (WatchTenant, denied),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (case, token, tenant, owner, expectations) in table {
        let mut client = client(&server, token).await;
        for (rpc, expected) in expectations {
            let got = call(&mut client, rpc, tenant, owner).await;
            if got != expected {
                failures.push(format!(
                    "{case}, {rpc:?}: got {got:?}, expected {expected:?}"
                ));
            }
            // An allowed Sync changes its target; anything else changes nothing.
            if matches!((rpc, got), (Sync, Ok(()))) {
                let target = format!("{tenant}/{owner}");
                let after = snapshot(&server, &tokens).await;
                documents.insert(target.clone(), after[&target].clone());
                assert_eq!(
                    after[&target].state.stamp.writer.as_str(),
                    "intruder",
                    "{case}"
                );
            }
            assert_eq!(
                snapshot(&server, &tokens).await,
                documents,
                "{case}, {rpc:?}: nothing else changed"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "authorization mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_foreign_key_is_refused_whole() {
    let tokens = Tokens::new();
    let server = start(&tokens).await;
    seed(&server, &tokens).await;
    let mut alice = client(&server, &tokens.user("acme", "alice")).await;
    let error = alice
        .batch_get(&[key("acme", "alice"), key("acme", "bob")])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::PermissionDenied), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_comes_from_the_token_not_the_request() {
    let tokens = Tokens::new();
    let server = start(&tokens).await;
    seed(&server, &tokens).await;
    // Same subject name, other tenant: still not alice of acme.
    let mut impostor = client(&server, &tokens.user("globex", "alice")).await;
    let error = impostor.get(&key("acme", "alice")).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::PermissionDenied));
    assert!(error.to_string().contains("globex"), "{error}");
}

/// (case, token) pairs that must all be refused as UNAUTHENTICATED.
fn bad_tokens(tokens: &Tokens) -> Vec<(&'static str, Option<String>)> {
    let claims = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = Tokens::claims("acme", "alice", "");
        f(&mut claims);
        tokens.sign(&claims)
    };
    let other = Tokens::new();
    let unsigned = {
        // {"alg":"none"} with the valid claims and no signature.
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&Tokens::claims("acme", "alice", ""))
        )
    };
    vec![
        ("no token", None),
        ("not a JWT", Some("hello".into())),
        (
            "signed with another secret",
            Some(other.user("acme", "alice")),
        ),
        (
            "expired",
            Some(claims(&|c| {
                c["exp"] = json!(settings_sync_tests::tokens::now() - 3600)
            })),
        ),
        (
            "wrong issuer",
            Some(claims(&|c| c["iss"] = json!("https://evil.test"))),
        ),
        (
            "wrong audience",
            Some(claims(&|c| c["aud"] = json!("other-service"))),
        ),
        (
            "no audience",
            Some(claims(&|c| drop(c.as_object_mut().unwrap().remove("aud")))),
        ),
        (
            "no tenant",
            Some(claims(&|c| {
                drop(c.as_object_mut().unwrap().remove("tenant"))
            })),
        ),
        (
            "bad tenant",
            Some(claims(&|c| c["tenant"] = json!("ac me"))),
        ),
        (
            "no subject",
            Some(claims(&|c| drop(c.as_object_mut().unwrap().remove("sub")))),
        ),
        (
            "no expiry",
            Some(claims(&|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ),
        (
            "not yet valid",
            Some(claims(&|c| {
                c["nbf"] = json!(settings_sync_tests::tokens::now() + 3600)
            })),
        ),
        ("alg none", Some(unsigned)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_invalid_and_expired_tokens_are_unauthenticated_with_a_clear_message() {
    let tokens = Tokens::new();
    let server = start(&tokens).await;
    let documents = seed(&server, &tokens).await;
    let mut failures = Vec::new();
    for (case, token) in bad_tokens(&tokens) {
        let mut client = server.client().await;
        if let Some(token) = &token {
            client.set_token(Some(token)).unwrap();
        }
        for rpc in [Rpc::Sync, Rpc::Get, Rpc::Query, Rpc::WatchTenant] {
            match call(&mut client, rpc, "acme", "alice").await {
                Err(Code::Unauthenticated) => {}
                other => failures.push(format!("{case}, {rpc:?}: {other:?}")),
            }
        }
    }
    let status = server
        .client()
        .await
        .raw()
        .get(v1::GetRequest {
            key: Some((&key("acme", "alice")).into()),
        })
        .await
        .unwrap_err();
    assert_refused(&status, Code::Unauthenticated, "authorization");
    let expired = tokens.sign(&{
        let mut c = Tokens::claims("acme", "alice", "");
        c["exp"] = json!(settings_sync_tests::tokens::now() - 3600);
        c
    });
    let mut client = client(&server, &expired).await;
    let error = client.get(&key("acme", "alice")).await.unwrap_err();
    assert!(error.to_string().contains("expired"), "{error}");
    assert!(
        failures.is_empty(),
        "accepted bad tokens:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        snapshot(&server, &tokens).await,
        documents,
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_without_a_token() {
    let tokens = Tokens::new();
    let server = start(&tokens).await;
    let channel = settings_sync_tests::server::channel(&server.endpoint()).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_auth_configuration_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    // serve_args adds --insecure-no-auth only when nothing is configured, so
    // parse the bare command line here.
    let argv = [
        "settings-sync",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ];
    let args = match <settings_sync::config::Cli as clap::Parser>::parse_from(argv).command {
        settings_sync::config::Command::Serve(args) => args,
        _ => unreachable!(),
    };
    let error = settings_sync::server::Application::build(&args)
        .await
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("--insecure-no-auth") && message.contains("--jwks-file"),
        "{message}"
    );
    // The harness's default, for contrast, starts.
    settings_sync::server::Application::build(&serve_args(&url, &[]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_jwt_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "short\n").unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let args = serve_args(&url, &["--jwt-secret-file", secret.to_str().unwrap()]);
    let error = settings_sync::server::Application::build(&args)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("shorter than 32 bytes"),
        "{error:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_the_token_from_its_token_file() {
    let tokens = Tokens::new();
    let server = start(&tokens).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", tokens.user("acme", "alice"))).unwrap();
    let bin = settings_sync_tests::replicas::server_binary();
    let run = |args: &[&str], with_token: bool| {
        let mut command = std::process::Command::new(&bin);
        command.args(args).args(["--server", &server.endpoint()]);
        command
            .env_remove("SETTINGS_SYNC_TOKEN")
            .env_remove("SETTINGS_SYNC_TOKEN_FILE");
        if with_token {
            command.args(["--token-file", token_file.to_str().unwrap()]);
        }
        command.output().expect("running the CLI")
    };
    let put = ["put", "acme", "alice", "alerts", r#"{"airports":["SEA"]}"#];
    let refused = tokio::task::block_in_place(|| run(&put, false));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"),
        "{refused:?}"
    );
    let accepted = tokio::task::block_in_place(|| run(&put, true));
    assert!(accepted.status.success(), "{accepted:?}");
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("APPLIED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_server_accepts_es256_tokens_of_its_keys_and_nothing_else() {
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signing_key = rcgen::KeyPair::generate().unwrap(); // ECDSA P-256
    let point = signing_key.public_key_raw(); // 0x04 || x || y
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]});
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let flags = [
        "--jwks-file",
        jwks_file.to_str().unwrap(),
        "--jwt-issuer",
        settings_sync_tests::tokens::ISSUER,
        "--jwt-audience",
        settings_sync_tests::tokens::AUDIENCE,
    ];
    let server = TestServer::start_with(Backend::Sqlite, &flags).await;
    let claims = Tokens::claims("acme", "alice", "");
    let es256 = |kid: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_der(&signing_key.serialize_der()),
        )
        .unwrap()
    };
    let mut alice = client(&server, &es256("k1")).await;
    alice
        .sync(&key("acme", "alice"), &write(1, "tab", json!({})))
        .await
        .unwrap();

    // The public key's coordinates as an HMAC secret: algorithm confusion.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(jwks["keys"][0]["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    for (case, token) in [
        ("unknown kid", es256("k2")),
        ("HS256 against an EC key", confused),
        ("HS256 shared secret", Tokens::new().user("acme", "alice")),
    ] {
        let mut client = client(&server, &token).await;
        let error = client.get(&key("acme", "alice")).await.unwrap_err();
        assert_eq!(error.code(), Some(Code::Unauthenticated), "{case}: {error}");
    }
}
