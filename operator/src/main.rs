//! `settings-sync-operator run` runs the operator; `settings-sync-operator
//! crd` prints the CRD that the Helm chart ships.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use settings_sync_operator::context::{ErrorChain, Timing};
use settings_sync_operator::leader::LeaseConfig;
use settings_sync_operator::runtime::{self, LEASE_DURATION, LEASE_RETRY, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "settings-sync-operator",
    version,
    about = "Runs settings-sync on Kubernetes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconcile SettingsSync resources.
    Run(RunArgs),
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// GET an http:// URL and succeed on a 2xx answer (the chart's
    /// `helm test` checks /readyz with it).
    Probe {
        /// e.g. http://settings-sync-operator.settings-sync-system.svc:8080/readyz
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "SETTINGS_SYNC_OPERATOR_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "SETTINGS_SYNC_OPERATOR_HTTP_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    http_listen: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "SETTINGS_SYNC_OPERATOR_LEASE_NAME",
        default_value = "settings-sync-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease: the operator's own (the chart sets it from
    /// the pod's namespace).
    #[arg(
        long,
        env = "SETTINGS_SYNC_OPERATOR_LEASE_NAMESPACE",
        default_value = "default"
    )]
    lease_namespace: String,
    /// This replica's identity in the Lease (the chart sets the pod name).
    #[arg(long, env = "SETTINGS_SYNC_OPERATOR_IDENTITY")]
    identity: Option<String>,
    /// Seconds between looks at a resource that is progressing or degraded.
    #[arg(
        long,
        env = "SETTINGS_SYNC_OPERATOR_BUSY_RESYNC_SECONDS",
        default_value_t = 10
    )]
    busy_resync_seconds: u64,
    /// Seconds between looks at a healthy resource (drift repair).
    #[arg(
        long,
        env = "SETTINGS_SYNC_OPERATOR_IDLE_RESYNC_SECONDS",
        default_value_t = 300
    )]
    idle_resync_seconds: u64,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "SETTINGS_SYNC_OPERATOR_LOG_JSON")]
    log_json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match settings_sync_operator::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Probe { url, timeout } => block_on(probe(url, Duration::from_secs(timeout))),
        Command::Run(args) => block_on(run(args)),
    }
}

fn block_on(task: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(task),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn probe(url: String, timeout: Duration) -> ExitCode {
    match settings_sync_operator::probe::probe(&url, timeout).await {
        Ok(code) => {
            println!("{url}: {code}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let telemetry = match settings_sync_operator::telemetry::init(args.log_json) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}", ErrorChain(&e));
            return ExitCode::FAILURE;
        }
    };
    // The pid keeps two local runs from sharing an identity; in a pod the
    // chart sets the pod name.
    let identity = args
        .identity
        .unwrap_or_else(|| format!("settings-sync-operator-{}", std::process::id()));
    let settings = Settings {
        namespace: args.watch_namespace,
        http_listen: args.http_listen,
        lease: LeaseConfig {
            name: args.lease_name,
            namespace: args.lease_namespace,
            identity,
            duration: LEASE_DURATION,
            retry: LEASE_RETRY,
        },
        timing: Timing {
            busy: Duration::from_secs(args.busy_resync_seconds.max(1)),
            idle: Duration::from_secs(args.idle_resync_seconds.max(1)),
        },
    };
    let result = runtime::run(settings, shutdown_signal()).await;
    let code = match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "operator stopped");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

/// SIGTERM (Kubernetes) or Ctrl-C (a terminal).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                tracing::info!(signal = name, "shutting down");
            }
            // Without signal handlers the default action (exit) applies.
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutting down on Ctrl-C");
        }
    }
}
