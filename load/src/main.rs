//! `settings-sync-load`: drives a settings-sync server and reports what it
//! sustained.
//!
//! - [`caller`]: the gRPC calls, with an optional bearer token.
//! - [`workload`]: which key, which call, which stamp.
//! - [`run`]: closed-loop workers, a progress line every second.
//! - [`report`]: latency histograms, errors, decisions; text or JSON.
//! - [`watch`]: `--watch-streams N`: idle Watch streams and the server's
//!   memory per stream.
//! - [`verify`]: `--verify-writes`: every acknowledged write read back
//!   after the run; writes lost are reported.

mod caller;
mod report;
mod run;
mod verify;
mod watch;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "settings-sync-load",
    version,
    about = "Load generator for settings-sync."
)]
pub struct Args {
    /// Server(s) to drive; workers are spread over them round-robin.
    #[arg(
        long = "endpoint",
        env = "SETTINGS_SYNC_LOAD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoints: Vec<String>,
    /// Requests in flight at once (closed loop: each worker waits for its reply).
    #[arg(
        long,
        short = 'c',
        env = "SETTINGS_SYNC_LOAD_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,
    /// HTTP/2 connections in all (default: min(concurrency, 8)); calls multiplex over them.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_CONNECTIONS")]
    pub connections: Option<usize>,
    /// Seconds measured. SIGINT or SIGTERM ends the run sooner, with its
    /// report (and the read-back of --verify-writes).
    #[arg(
        long,
        short = 'd',
        env = "SETTINGS_SYNC_LOAD_DURATION",
        default_value_t = 10.0
    )]
    pub duration: f64,
    /// Seconds of load before measuring starts (connections, caches).
    #[arg(long, env = "SETTINGS_SYNC_LOAD_WARMUP", default_value_t = 1.0)]
    pub warmup: f64,
    /// Documents written and read: `index % tenants` is the tenant,
    /// `index / tenants` the owner, name "settings".
    #[arg(long, env = "SETTINGS_SYNC_LOAD_DOCUMENTS", default_value_t = 10_000)]
    pub documents: u64,
    /// Tenants the documents are spread over.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_TENANTS", default_value_t = 10)]
    pub tenants: u64,
    /// Fraction of calls that are Gets; the rest are Syncs.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_READS", default_value_t = 0.0)]
    pub reads: f64,
    /// Fraction of Syncs that go to one hot document with a clock drawn
    /// from the recent past, so they race and many are STALE.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_CONFLICT_RATE", default_value_t = 0.0)]
    pub conflict_rate: f64,
    /// Added to every clock, to keep writing over documents an earlier run
    /// left with larger clocks.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_CLOCK_BASE", default_value_t = 0)]
    pub clock_base: u64,
    /// File holding a bearer token sent with every call.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the final report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds a call may take before it ends DEADLINE_EXCEEDED.
    #[arg(long, env = "SETTINGS_SYNC_LOAD_CALL_TIMEOUT", default_value_t = 10.0)]
    pub call_timeout: f64,
    /// Send a call answered UNAVAILABLE again (the same request: a write
    /// that had applied answers UNCHANGED), until another answer or the
    /// end of the run. Every UNAVAILABLE is still counted as an error.
    #[arg(long)]
    pub retry_unavailable: bool,
    /// Syncs send a per-field patch setting one top-level field of the
    /// value (drawn at random) under the write's stamp, instead of the whole
    /// document: the documents become field-merged on their first patch.
    #[arg(long, conflicts_with = "verify_writes")]
    pub patch_fields: bool,
    /// Values carry their own stamp; after the run every document with an
    /// acknowledged write (APPLIED or UNCHANGED) is read back and must hold
    /// that write or one with a larger stamp. Reports the writes lost.
    #[arg(long)]
    pub verify_writes: bool,
    /// Instead of load: open this many idle Watch streams against the
    /// first endpoint and report the server's memory per stream.
    #[arg(long)]
    pub watch_streams: Option<usize>,
    /// With --watch-streams: the server's process id, whose RSS is read
    /// from /proc/<pid>/status before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// With --watch-streams: the tenant watched (an idle one).
    #[arg(long, default_value = "idle")]
    pub watch_tenant: String,
    /// With --watch-streams: seconds to hold the streams open once all are up.
    #[arg(long, default_value_t = 5.0)]
    pub watch_hold: f64,
}

impl Args {
    fn connections(&self, wanted: usize) -> usize {
        self.connections.unwrap_or(wanted.min(8)).max(1)
    }
}

/// The same allocator as the server, so the load costs the shared cores
/// no more than it must.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(!args.endpoints.is_empty(), "give at least one --endpoint");
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    if let Some(streams) = args.watch_streams {
        let connections = args.connections(200);
        let report = watch::idle_streams(&args, streams, connections, token.as_deref()).await?;
        report.print(args.json);
        return Ok(());
    }
    anyhow::ensure!(args.call_timeout > 0.0, "--call-timeout must be positive");
    let connections = args.connections(args.concurrency);
    let callers = caller::connect_all(&args.endpoints, connections, token.as_deref()).await?;
    let call_timeout = Duration::from_secs_f64(args.call_timeout);
    let workload = workload::Workload::from_args(&args)?;
    let (mut report, acknowledged) = run::run(
        callers.clone(),
        workload,
        run::Plan {
            concurrency: args.concurrency.max(1),
            warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
            duration: Duration::from_secs_f64(args.duration.max(0.1)),
            retry_unavailable: args.retry_unavailable,
            call_timeout,
            stop: stop_on_signal(),
        },
    )
    .await;
    if args.verify_writes {
        report.verify = Some(verify::read_back(&callers, acknowledged, call_timeout).await);
    }
    report.print(args.json);
    Ok(())
}

/// Turns true on SIGINT or SIGTERM.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    use tokio::signal::unix::{SignalKind, signal};
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("stopping: the run ends now");
        let _ = stop.send(true);
    });
    stopped
}
