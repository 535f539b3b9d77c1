//! The real server, in this process, on a real loopback socket.

use std::net::SocketAddr;

use clap::Parser;
use settings_sync::config::{Cli, Command, ServeArgs};
use settings_sync::server::Application;
use settings_sync_client::Client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _data: Option<tempfile::TempDir>,
}

/// Serve arguments as the command line would give them, with `extra` flags.
/// Without authentication unless `extra` configures it (see [`auth_flags`]).
pub fn serve_args(database_url: &str, extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "settings-sync",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
    ];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(auth_flags(extra));
    match Cli::parse_from(argv).command {
        Command::Serve(args) => args,
        _ => unreachable!("parsed a serve command line"),
    }
}

/// `--insecure-no-auth`, unless `extra` already says how to authenticate:
/// `serve` refuses to start without either.
pub fn auth_flags(extra: &[&str]) -> &'static [&'static str] {
    let configured = extra
        .iter()
        .any(|flag| ["--jwks-file", "--jwt-secret-file", "--insecure-no-auth"].contains(flag));
    if configured {
        &[]
    } else {
        &["--insecure-no-auth"]
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Starts a server on a fresh database with extra `serve` flags.
    pub async fn start_with(backend: Backend, extra: &[&str]) -> Self {
        let (url, data) = match backend {
            Backend::Postgres => (crate::postgres::fresh_database().await, None),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                (
                    format!("sqlite://{}", dir.path().join("settings.db").display()),
                    Some(dir),
                )
            }
        };
        let app = Application::build(&serve_args(&url, extra))
            .await
            .expect("the server starts");
        Self::serve(app, url, data)
    }

    /// Serves an application built by the caller (e.g. over a planted store).
    pub fn serve(app: Application, database_url: String, data: Option<tempfile::TempDir>) -> Self {
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            database_url,
            stop: Some(stop),
            task: Some(task),
            _data: data,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.endpoint())
            .await
            .expect("connecting to the test server")
    }

    /// Asks the server to shut down and waits until it has drained.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A plain channel, for the generated clients of health and reflection.
pub async fn channel(endpoint: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("a valid endpoint")
        .connect()
        .await
        .expect("connecting to the test server")
}
