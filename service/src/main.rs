//! The composition root: parse the command line, wire the pieces, run.

use clap::Parser;
use settings_sync::config::{Cli, Command};
use settings_sync::server::Application;
use settings_sync::store::PostgresStore;
use settings_sync::{cli, telemetry};

/// glibc malloc was an eighth of the server's CPU under load, much of it
/// contended arena locks (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Cli::parse();
    let telemetry = telemetry::init();
    let result = match args.command {
        Command::Serve(serve) => {
            let app = Application::build(&serve).await?;
            tracing::info!(address = %app.local_addr(), database = %redact(&serve.database.url()), "serving");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate(database) => {
            let url = database.url();
            if url.starts_with("sqlite://") {
                // Opening an embedded database migrates it.
                settings_sync::store::SqliteStore::open(&url, 1).await?;
            } else {
                PostgresStore::connect_lazy(&url, 1)?.migrate().await?;
            }
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Get(get) => cli::get(get).await,
        Command::Put(put) => cli::put(put).await,
        Command::Query(query) => cli::query(query).await,
    };
    // After the server drained: the spans of its last requests go out too.
    telemetry.shutdown().await;
    result
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
