//! The operator configures the server only through environment variables.
//! These tests hold that contract against the real `settings-sync` binary:
//! every variable the operator sets is one the server reads, and the server
//! starts with them the way the migration Job and the Deployment run it.
//!
//! Needs `SETTINGS_SYNC_SERVER_BIN` (scripts/operator-e2e.sh builds the
//! server and sets it); skipped with a message otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use settings_sync_operator::builders::{
    CLIENT_CA_FILE, Instance, JWKS_FILE, TLS_CERT_FILE, TLS_KEY_FILE, config_map, deployment,
};
use settings_sync_operator::crd::SettingsSync;

fn server() -> Option<PathBuf> {
    let bin = std::env::var_os("SETTINGS_SYNC_SERVER_BIN").map(PathBuf::from);
    if bin.is_none() {
        eprintln!(
            "SKIPPED: set SETTINGS_SYNC_SERVER_BIN to the settings-sync binary (scripts/operator-e2e.sh does)"
        );
    }
    bin
}

fn instance(spec: serde_json::Value) -> Instance {
    let obj: SettingsSync = serde_json::from_value(json!({
        "apiVersion": "settingssync.dev/v1alpha1", "kind": "SettingsSync",
        "metadata": {"name": "prefs", "namespace": "apps", "uid": "u-1"},
        "spec": spec,
    }))
    .expect("a valid resource");
    Instance::try_from(&obj).expect("complete")
}

/// Everything the server container gets: the ConfigMap's variables and the
/// names of the ones set from Secrets.
fn server_env(instance: &Instance) -> (BTreeMap<String, String>, Vec<String>) {
    let data = config_map(instance).data.unwrap_or_default();
    let d = deployment(instance, "img");
    let pod = d.spec.and_then(|s| s.template.spec).expect("a pod spec");
    let from_secrets = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    (data, from_secrets)
}

/// Whether `--help` text documents the environment variable `name`
/// (clap prints `[env: NAME=value]`, or `[env: NAME]` for hidden values).
fn reads(help: &str, name: &str) -> bool {
    help.contains(&format!("env: {name}=")) || help.contains(&format!("env: {name}]"))
}

/// The `SETTINGS_SYNC_*` names among `names` that `help` does not document.
fn unread<'a>(help: &str, names: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    names
        .into_iter()
        .filter(|n| n.starts_with("SETTINGS_SYNC_") && !reads(help, n))
        .collect()
}

/// A resource with every spec field that reaches the server set.
fn full() -> Instance {
    instance(json!({
        "image": "img", "replicas": 2,
        "database": {"urlSecretRef": {"name": "db", "key": "url"}, "poolSize": 5},
        "limits": {
            "maxDocumentBytes": 2048, "maxClockJump": 10,
            "rateLimitPerSecond": 2.5, "rateLimitBurst": 7, "maxWatchStreamsPerIdentity": 3,
        },
        "telemetry": {"otlpEndpoint": "http://127.0.0.1:9", "samplingRatio": 0.5},
        "tls": {"secretName": "tls", "clientCaSecretRef": {"name": "clients", "key": "ca.crt"}},
        "auth": {
            "jwksSecretRef": {"name": "jwks", "key": "jwks.json"},
            "issuer": "https://idp.example", "audience": "settings",
        },
        "cors": {"allowedOrigins": ["https://app.example", "http://127.0.0.1:5173"]},
    }))
}

fn insecure() -> Instance {
    instance(json!({
        "image": "img",
        "database": {"urlSecretRef": {"name": "db", "key": "url"}},
        "auth": {"insecureNoAuth": true},
    }))
}

fn help(bin: &PathBuf, subcommand: &str) -> String {
    let out = Command::new(bin)
        .args([subcommand, "--help"])
        .output()
        .expect("the server runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_variable_the_operator_sets_is_one_the_server_reads() {
    let Some(bin) = server() else { return };
    let serve = help(&bin, "serve");
    for instance in [full(), insecure()] {
        let (data, from_secrets) = server_env(&instance);
        let names: Vec<String> = data.keys().cloned().chain(from_secrets).collect();
        let unread = unread(&serve, &names);
        assert!(
            unread.is_empty(),
            "the operator sets {unread:?}, which `settings-sync serve` does not read"
        );
    }
    let (data, _) = server_env(&full());
    for name in [
        "SETTINGS_SYNC_JWT_ISSUER",
        "SETTINGS_SYNC_JWT_AUDIENCE",
        "SETTINGS_SYNC_TLS_CLIENT_CA_FILE",
        "SETTINGS_SYNC_RATE_LIMIT_PER_SECOND",
        "SETTINGS_SYNC_RATE_LIMIT_BURST",
        "SETTINGS_SYNC_MAX_WATCH_STREAMS_PER_IDENTITY",
    ] {
        assert!(
            data.contains_key(name),
            "the full resource does not set {name}"
        );
    }
    let (data, _) = server_env(&insecure());
    assert_eq!(data["SETTINGS_SYNC_INSECURE_NO_AUTH"], "true");
    assert!(
        reads(&help(&bin, "migrate"), "SETTINGS_SYNC_DATABASE_URL"),
        "migrate reads the database URL"
    );
}

/// The check above can fail: a variable the server does not know, planted
/// among the operator's, is reported (and a known one is not).
#[test]
fn a_variable_the_server_does_not_read_is_reported() {
    let Some(bin) = server() else { return };
    let serve = help(&bin, "serve");
    let (data, _) = server_env(&full());
    let mut names: Vec<String> = data.into_keys().collect();
    names.push("SETTINGS_SYNC_JWT_ISSUR".into());
    assert_eq!(
        unread(&serve, &names),
        [&"SETTINGS_SYNC_JWT_ISSUR".to_string()]
    );
}

/// The files the operator mounts, made for real: a server key pair, a
/// client CA and a key set, at the mount paths under `root`.
fn write_mounted_files(root: &Path) {
    use base64::Engine as _;
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let server_key = rcgen::KeyPair::generate().expect("a server key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .self_signed(&server_key)
        .expect("a server certificate");
    let signing = rcgen::KeyPair::generate().expect("a signing key"); // P-256
    let point = signing.public_key_raw(); // 0x04 || x || y
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let files = [
        (TLS_CERT_FILE, server.pem()),
        (TLS_KEY_FILE, server_key.serialize_pem()),
        (CLIENT_CA_FILE, ca.pem()),
        (JWKS_FILE, jwks.to_string()),
    ];
    for (path, text) in files {
        let path = under(root, path);
        std::fs::create_dir_all(path.parent().unwrap()).expect("a mount directory");
        std::fs::write(path, text).expect("a mounted file");
    }
}

fn under(root: &Path, mount_path: &str) -> PathBuf {
    root.join(mount_path.trim_start_matches('/'))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every value the operator can give, not just every name: the server
/// parses them all, loads the mounted TLS pair, client CA and key set, and
/// listens (it binds only after all of that succeeded).
#[test]
fn the_server_starts_with_every_setting_the_operator_gives_it() {
    let Some(bin) = server() else { return };
    let (mut env, _) = server_env(&full());
    let dir = tempfile::tempdir().expect("temp dir");
    write_mounted_files(dir.path());
    for value in env.values_mut() {
        if value.starts_with("/etc/settings-sync/") {
            *value = under(dir.path(), value).display().to_string();
        }
    }
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    env.insert("SETTINGS_SYNC_DATABASE_URL".into(), url);
    env.remove("SETTINGS_SYNC_SKIP_MIGRATIONS");
    let port = free_port();
    env.insert("SETTINGS_SYNC_LISTEN".into(), format!("127.0.0.1:{port}"));
    let mut serve = Command::new(&bin)
        .arg("serve")
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if serve.try_wait().expect("waitable").is_some() {
            let out = serve.wait_with_output().expect("output");
            panic!(
                "the server refused the operator's settings:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = serve.kill();
    let _ = serve.wait();
}

#[test]
fn the_server_migrates_then_serves_with_the_operators_settings() {
    let Some(bin) = server() else { return };
    let plain = instance(json!({
        "image": "img",
        "database": {"urlSecretRef": {"name": "db", "key": "url"}, "poolSize": 3},
        "limits": {"maxDocumentBytes": 4096, "maxClockJump": 1000},
        // A collector that is not there: export fails quietly, serving does not.
        "telemetry": {"otlpEndpoint": "http://127.0.0.1:9", "samplingRatio": 0.25},
        // No token at hand for the CLI below.
        "auth": {"insecureNoAuth": true},
    }));
    let (mut env, _) = server_env(&plain);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("settings.db").display()
    );
    env.insert("SETTINGS_SYNC_DATABASE_URL".into(), url);

    // The Job: `migrate` with the database settings only.
    let migrate = Command::new(&bin)
        .arg("migrate")
        .env(
            "SETTINGS_SYNC_DATABASE_URL",
            &env["SETTINGS_SYNC_DATABASE_URL"],
        )
        .output()
        .expect("migrate runs");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // The Deployment's pod, on a free loopback port instead of 0.0.0.0:50051.
    let port = free_port();
    env.insert("SETTINGS_SYNC_LISTEN".into(), format!("127.0.0.1:{port}"));
    assert_eq!(env["SETTINGS_SYNC_SKIP_MIGRATIONS"], "true");
    let mut serve = Command::new(&bin)
        .arg("serve")
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");

    let deadline = Instant::now() + Duration::from_secs(30);
    let server = format!("http://127.0.0.1:{port}");
    let wrote = loop {
        let put = Command::new(&bin)
            .args([
                "put",
                "t",
                "o",
                "prefs",
                r#"{"theme":"dark"}"#,
                "--server",
                &server,
            ])
            .output()
            .expect("the client runs");
        if put.status.success() {
            break String::from_utf8_lossy(&put.stdout).into_owned();
        }
        if let Some(status) = serve.try_wait().expect("waitable") {
            panic!("the server exited with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the server did not answer within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(wrote.contains("APPLIED"), "{wrote}");
}
