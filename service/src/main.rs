//! The composition root: parse the command line, wire the pieces, run.

use std::process::ExitCode;

use clap::Parser;
use settings_sync::cli::CliError;
use settings_sync::config::{Cli, Command, DatabaseArgs, ServeArgs};
use settings_sync::server::Application;
use settings_sync::store::Database;
use settings_sync::{cli, telemetry};

/// glibc malloc was an eighth of the server's CPU under load, much of it
/// contended arena locks (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Failures are one line on stderr with an exit code per kind (see
/// `cli::exit`); only panics, which are bugs, print a backtrace.
#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let telemetry = telemetry::init();
    let result = run(args.command).await;
    // After the server drained: the spans of its last requests go out too.
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit() as u8)
        }
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    let failed = |error: anyhow::Error| CliError::Failed(format!("{error:#}"));
    match command {
        Command::Serve(serve) => serve_until_stopped(serve).await.map_err(failed),
        Command::Migrate(database) => migrate(database).await.map_err(failed),
        Command::Get(get) => cli::get(get).await,
        Command::Put(put) => cli::put(put).await,
        Command::Delete(delete) => cli::delete(delete).await,
        Command::Patch(patch) => cli::patch(patch).await,
        Command::Query(query) => cli::query(query).await,
        Command::Overrides(args) => cli::overrides(args).await,
        Command::Reapply(args) => cli::reapply(args).await,
        Command::Watch(watch) => cli::watch(watch).await,
        Command::Health(health) => cli::health(health).await,
    }
}

async fn serve_until_stopped(serve: ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(&serve).await?;
    tracing::info!(address = %app.local_addr(), database = %redact(&serve.database.url()), "serving");
    app.run_until_stopped(shutdown_signal()).await
}

async fn migrate(database: DatabaseArgs) -> anyhow::Result<()> {
    Database::parse(&database.url())?.migrate().await?;
    tracing::info!("migrations applied");
    Ok(())
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
