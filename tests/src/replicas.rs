//! Server replicas as real processes of the `settings-sync` binary, so a
//! test can `kill -9` one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server binary of this build, built once per test run with the same
/// command `scripts/test.sh` runs first (so there it is a no-op: the same
/// feature unification, nothing rebuilt).
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "settings-sync",
                    "--bin",
                    "settings-sync",
                ])
                .status()
                .expect("running cargo build");
            assert!(status.success(), "building the server binary failed");
            // Test executables live in <target>/<profile>/deps.
            let exe = std::env::current_exe().expect("the test executable");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("a target directory");
            profile_dir.join("settings-sync")
        })
        .clone()
}

pub struct Replica {
    pub addr: SocketAddr,
    child: Child,
}

impl Replica {
    /// Starts `settings-sync serve` on a free port and waits until it serves.
    pub async fn start(database_url: &str, extra: &[&str]) -> Replica {
        let mut child = Command::new(server_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(extra)
            .args(crate::server::auth_flags(extra))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting a replica");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines.next_line().await.expect("reading replica output");
            let Some(line) = line else {
                panic!("the replica exited before serving")
            };
            if let Some(rest) = line.split("serving address=").nth(1) {
                let addr = rest.split_whitespace().next().expect("an address");
                break addr.parse().expect("a socket address");
            }
        };
        // Keep draining the log so the replica never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Replica { addr, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM: the server drains in-flight requests and exits. Returns
    /// whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().expect("a running replica").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.child
            .wait()
            .await
            .expect("waiting for the replica")
            .success()
    }

    /// SIGKILL: no draining, no goodbye.
    pub async fn kill_9(&mut self) {
        self.child.start_kill().expect("killing the replica");
        let _ = self.child.wait().await;
    }
}
