//! A throw-away Kubernetes control plane for the end-to-end tests: a real
//! etcd, kube-apiserver and kube-controller-manager (garbage collector
//! only) on loopback, with static token authentication and RBAC.
//!
//! There is no kubelet and no scheduler: nothing runs pods. The tests play
//! the part of the kubelet and the Job/Deployment controllers by writing
//! the status subresources those would write.
//!
//! Needs `SETTINGS_SYNC_E2E_K8S` (the directory holding etcd, kube-apiserver
//! and kube-controller-manager) and `SETTINGS_SYNC_HELM`; both come from
//! `scripts/operator-tools.sh`, and `scripts/operator-e2e.sh` sets them.

use std::future::Future;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub mod otlp;
mod process;

pub use process::Proc;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// How long any one condition may take to hold.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Tools {
    pub bin: PathBuf,
    pub helm: PathBuf,
}

/// The tools, or `None` (and a printed reason) when the suite is not set up.
pub fn tools() -> Option<Tools> {
    let bin = std::env::var_os("SETTINGS_SYNC_E2E_K8S").map(PathBuf::from);
    let helm = std::env::var_os("SETTINGS_SYNC_HELM").map(PathBuf::from);
    match (bin, helm) {
        (Some(bin), Some(helm)) => Some(Tools { bin, helm }),
        _ => {
            eprintln!(
                "SKIPPED: the operator end-to-end suite needs SETTINGS_SYNC_E2E_K8S and SETTINGS_SYNC_HELM; \
                 run scripts/operator-e2e.sh"
            );
            None
        }
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

/// Polls `check` until it returns `Some`, failing the test after `TIMEOUT`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Cluster {
    // Field order is drop order: processes stop before their files go.
    procs: Vec<Proc>,
    pub dir: tempfile::TempDir,
    pub admin_kubeconfig: PathBuf,
    pub operator_kubeconfig: PathBuf,
    pub helm: PathBuf,
    bin: PathBuf,
}

const ADMIN_TOKEN: &str = "e2e-admin-token";
const OPERATOR_TOKEN: &str = "e2e-operator-token";

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop the processes first, then keep their files if asked to.
        self.procs.clear();
        if std::env::var_os("SETTINGS_SYNC_E2E_KEEP").is_some() {
            let path = self.dir.path().to_path_buf();
            let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("kept the cluster's files in {}", path.display());
        }
    }
}

impl Cluster {
    /// Starts etcd and the API server. The operator
    /// authenticates as `operator_user` (a ServiceAccount's user name), so
    /// it gets exactly the permissions the chart's RBAC grants.
    pub async fn start(tools: &Tools, operator_user: &str) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("settings-sync-k8s-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let sh = |args: &[&str]| {
            let ok = Command::new(args[0])
                .args(&args[1..])
                .current_dir(d)
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "{args:?} failed");
        };
        sh(&["openssl", "genrsa", "-out", "sa.key", "2048"]);
        sh(&[
            "openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub",
        ]);
        let groups = "system:serviceaccounts,system:authenticated";
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{ADMIN_TOKEN},admin,admin,\"system:masters\"\n{OPERATOR_TOKEN},{operator_user},operator,\"{groups}\"\n"
            ),
        )
        .expect("token file");

        let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = Proc::spawn(
            "etcd",
            d,
            Command::new(tools.bin.join("etcd")).args([
                "--data-dir",
                &d.join("etcd").to_string_lossy(),
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("default={peer_url}"),
                // Durability is pointless for a test's throw-away data.
                "--unsafe-no-fsync",
            ]),
        );
        let path = |name: &str| d.join(name).to_string_lossy().into_owned();
        let apiserver = Proc::spawn(
            "kube-apiserver",
            d,
            Command::new(tools.bin.join("kube-apiserver")).args([
                &format!("--etcd-servers={etcd_url}"),
                &format!("--secure-port={api_port}"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                // Self-signed serving certificate, written here on start.
                &format!("--cert-dir={}", path("certs")),
                &format!("--token-auth-file={}", path("tokens.csv")),
                "--authorization-mode=RBAC",
                &format!("--service-account-key-file={}", path("sa.pub")),
                &format!("--service-account-signing-key-file={}", path("sa.key")),
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.0.0.0/24",
            ]),
        );
        let cluster = Cluster {
            procs: vec![etcd, apiserver],
            admin_kubeconfig: d.join("admin.kubeconfig"),
            operator_kubeconfig: d.join("operator.kubeconfig"),
            helm: tools.helm.clone(),
            bin: tools.bin.clone(),
            dir,
        };
        let cert = cluster.dir.path().join("certs/apiserver.crt");
        let cert = eventually("the API server's certificate", || {
            let pem = std::fs::read(&cert).ok().filter(|p| !p.is_empty());
            async move { pem }
        })
        .await;
        let server = format!("https://127.0.0.1:{api_port}");
        write_kubeconfig(&cluster.admin_kubeconfig, &server, &cert, ADMIN_TOKEN);
        write_kubeconfig(&cluster.operator_kubeconfig, &server, &cert, OPERATOR_TOKEN);

        let admin = cluster.admin().await;
        eventually("the API server to be ready", || {
            let admin = admin.clone();
            async move {
                let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
                admin
                    .request_text(request)
                    .await
                    .ok()
                    .filter(|t| t.trim() == "ok")
            }
        })
        .await;

        cluster
    }

    /// Starts kube-controller-manager with only the garbage collector: it
    /// deletes children whose owner is gone. Start it after the CRDs are
    /// installed: it learns new kinds only at its next discovery (30 s).
    pub fn start_garbage_collector(&mut self) {
        let gc = Proc::spawn(
            "kube-controller-manager",
            self.dir.path(),
            Command::new(self.bin.join("kube-controller-manager")).args([
                &format!("--kubeconfig={}", self.admin_kubeconfig.display()),
                // Deployment/ReplicaSet/Job controllers stay off so the
                // tests control those statuses.
                "--controllers=garbagecollector",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--secure-port=0",
            ]),
        );
        self.procs.push(gc);
    }
    pub async fn admin(&self) -> Client {
        client(&self.admin_kubeconfig).await
    }

    /// Runs helm against the cluster as the admin.
    pub fn helm(&self, args: &[&str]) -> String {
        let out = Command::new(&self.helm)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .output()
            .expect("helm runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "helm {args:?} failed:\n{text}");
        text
    }

    /// Starts the operator binary against the cluster as the operator user,
    /// with `env` added to its environment.
    pub fn operator(
        &self,
        identity: &str,
        http_port: u16,
        lease_namespace: &str,
        lease_name: &str,
        env: &[(&str, String)],
    ) -> Proc {
        Proc::spawn(
            identity,
            self.dir.path(),
            Command::new(env!("CARGO_BIN_EXE_settings-sync-operator"))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .arg("run")
                .env("KUBECONFIG", &self.operator_kubeconfig)
                .env("SETTINGS_SYNC_OPERATOR_IDENTITY", identity)
                .env(
                    "SETTINGS_SYNC_OPERATOR_HTTP_LISTEN",
                    format!("127.0.0.1:{http_port}"),
                )
                .env("SETTINGS_SYNC_OPERATOR_LEASE_NAMESPACE", lease_namespace)
                .env("SETTINGS_SYNC_OPERATOR_LEASE_NAME", lease_name)
                // Secrets are polled, not watched: a Secret broken while a
                // resource is healthy is seen at the idle resync, and fixed
                // at the busy one. Both short, so the scenario is not a race
                // against the 300 s default.
                .env("SETTINGS_SYNC_OPERATOR_BUSY_RESYNC_SECONDS", "1")
                .env("SETTINGS_SYNC_OPERATOR_IDLE_RESYNC_SECONDS", "2")
                .env("RUST_LOG", "info,settings_sync_operator=debug"),
        )
    }
}

fn write_kubeconfig(path: &Path, server: &str, ca_pem: &[u8], token: &str) {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: e2e\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e\n\
         current-context: e2e\n"
    );
    let mut file = std::fs::File::create(path).expect("kubeconfig");
    file.write_all(text.as_bytes()).expect("kubeconfig written");
}

pub async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client")
}

/// `GET path` on a plain HTTP port; `None` while it does not answer.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    Some((code, response))
}
