//! TLS on the gRPC port: TLS clients connect, plaintext ones do not, a
//! replaced certificate is served to new connections without a restart,
//! and with mTLS a client certificate is what lets a service token count.

use std::time::{Duration, Instant};

use serde_json::json;
use settings_sync_client::Client;
use settings_sync_tests::certs::{Ca, tls_channel};
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::tokens::Tokens;
use settings_sync_tests::{Backend, TestServer};
use tonic::Code;

struct TlsServer {
    server: TestServer,
    dir: tempfile::TempDir,
}

async fn start(ca: &Ca, extra: &[&str]) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.server().write(dir.path());
    let mut flags = vec![
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ];
    flags.extend_from_slice(extra);
    let server = TestServer::start_with(Backend::Sqlite, &flags).await;
    TlsServer { server, dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_trusts_the_ca_connects() {
    let ca = Ca::new("test CA");
    let tls = start(&ca, &[]).await;
    let channel = tls_channel(tls.server.addr, &ca.pem(), None).await.unwrap();
    let mut client = Client::from_channel(channel);
    let reply = client
        .sync(&key("alice"), &write(1, "tab", json!({"tls": true})))
        .await
        .unwrap();
    assert_eq!(
        client.get(&key("alice")).await.unwrap(),
        Some(reply.document)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused() {
    let ca = Ca::new("test CA");
    let tls = start(&ca, &[]).await;
    let refused = match Client::connect(tls.server.endpoint()).await {
        Err(_) => true,
        Ok(mut client) => client.get(&key("alice")).await.is_err(),
    };
    assert!(
        refused,
        "a plaintext client got an answer from the TLS port"
    );
    // A client that does not trust the certificate is refused too.
    let stranger = Ca::new("another CA");
    let untrusted = match tls_channel(tls.server.addr, &stranger.pem(), None).await {
        Err(_) => true,
        Ok(channel) => Client::from_channel(channel)
            .get(&key("alice"))
            .await
            .is_err(),
    };
    assert!(untrusted);
    // And the server still serves TLS clients afterwards.
    let channel = tls_channel(tls.server.addr, &ca.pem(), None).await.unwrap();
    assert_eq!(
        Client::from_channel(channel)
            .get(&key("alice"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_to_new_connections_without_a_restart() {
    let old_ca = Ca::new("old CA");
    let tls = start(&old_ca, &[]).await;
    let new_ca = Ca::new("new CA");
    assert!(
        tls_channel(tls.server.addr, &new_ca.pem(), None)
            .await
            .is_err(),
        "the new CA's clients do not trust the old certificate"
    );
    let old_connection = tls_channel(tls.server.addr, &old_ca.pem(), None)
        .await
        .unwrap();

    new_ca.server().write(tls.dir.path());

    // The next handshake notices the change; poll with a deadline in case a
    // coarse file-system clock gave the new file the old modification time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let channel = loop {
        match tls_channel(tls.server.addr, &new_ca.pem(), None).await {
            Ok(channel) => break channel,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the new certificate was never served"
                );
                new_ca.server().write(tls.dir.path());
            }
        }
    };
    let mut client = Client::from_channel(channel);
    client
        .sync(&key("alice"), &write(1, "tab", json!({})))
        .await
        .unwrap();
    // Connections made before keep working: nothing restarted.
    let mut old = Client::from_channel(old_connection);
    assert!(old.get(&key("alice")).await.unwrap().is_some());
    assert!(
        tls_channel(tls.server.addr, &old_ca.pem(), None)
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mtls_a_service_token_counts_only_with_a_verified_client_certificate() {
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, client_ca.pem()).unwrap();
    let tokens = Tokens::new();
    let mut extra: Vec<String> = tokens.flags();
    extra.extend([
        "--tls-client-ca-file".into(),
        ca_file.to_str().unwrap().into(),
    ]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let tls = start(&ca, &extra).await;
    let service_token = tokens.service("acme", "svc-alerts");
    let query =
        |mut client: Client| async move { client.query("acme", "alerts", "{}", 0, None).await };

    let machine = client_ca.client("svc-alerts");
    let channel = tls_channel(tls.server.addr, &ca.pem(), Some(&machine))
        .await
        .unwrap();
    let with_cert = Client::from_channel(channel)
        .with_token(&service_token)
        .unwrap();
    query(with_cert)
        .await
        .expect("a service with its certificate may query");

    let channel = tls_channel(tls.server.addr, &ca.pem(), None).await.unwrap();
    let without_cert = Client::from_channel(channel)
        .with_token(&service_token)
        .unwrap();
    let error = query(without_cert.clone()).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::Unauthenticated), "{error}");
    assert!(error.to_string().contains("client certificate"), "{error}");
    // A user token needs no certificate.
    let mut alice = without_cert
        .with_token(&tokens.user("acme", "alice"))
        .unwrap();
    alice
        .sync(&key("alice"), &write(1, "tab", json!({})))
        .await
        .unwrap();

    let stranger = Ca::new("stranger CA").client("svc-alerts");
    let refused = match tls_channel(tls.server.addr, &ca.pem(), Some(&stranger)).await {
        Err(_) => true,
        Ok(channel) => query(
            Client::from_channel(channel)
                .with_token(&service_token)
                .unwrap(),
        )
        .await
        .is_err(),
    };
    assert!(refused, "a certificate from another CA is refused");
}
