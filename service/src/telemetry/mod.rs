//! Logs, traces and metrics.
//!
//! - [`init`] builds the `tracing` subscriber: log lines to stderr filtered
//!   by `RUST_LOG`, plus an OpenTelemetry layer when an OTLP endpoint is
//!   configured ([`config`], [`export`]). [`Telemetry::shutdown`] flushes.
//! - [`grpc`]: the tower layer that opens one SERVER span per RPC (one per
//!   Watch stream), continuing the caller's W3C trace context.
//! - [`sync`]: what a `Sync` decided, recorded on its span and in metrics.
//! - [`db`]: CLIENT spans for the SQL statements an RPC runs.
//! - [`metrics`]: the instruments a dashboard charts.
//!
//! The RPC and database spans are ordinary `tracing` spans whose `otel.*`
//! fields name them for OpenTelemetry, so they cost next to nothing when
//! export is off and appear in log lines either way.

pub mod config;
pub mod db;
mod export;
pub mod grpc;
pub mod metrics;
pub mod sync;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

pub use config::ExportConfig;
pub use grpc::{RpcTrace, TraceSettings};

/// How long shutdown waits for the last spans and metrics to reach the
/// collector; an unreachable one must not hold up a rolling deploy.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The `serve` flags about traces.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct TraceArgs {
    /// Replace owner ids in trace attributes with a stable hash
    /// (`sha256:` and 16 hex digits), so traces can be correlated per owner
    /// without naming them.
    #[arg(long, env = "SETTINGS_SYNC_TRACE_REDACT_OWNER")]
    pub trace_redact_owner: bool,
}

/// The exporters started by [`init`]; flush them with [`Telemetry::shutdown`].
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

/// Installs the global subscriber and, when the `OTEL_*` environment asks
/// for it, the OTLP exporters. Call once, inside the Tokio runtime. A bad
/// setting never stops the server: it is logged and export stays off.
pub fn init() -> Telemetry {
    let (config, mut problems) = match ExportConfig::from_vars(|name| std::env::var(name).ok()) {
        Ok(config) => (config, Vec::new()),
        Err(error) => (None, vec![error.to_string()]),
    };
    let exports = match config {
        Some(config) => {
            let (exports, errors) = export::start(config);
            problems.extend(errors.iter().map(|e| error_chain(e)));
            exports
        }
        None => export::Exports::default(),
    };
    let logs = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans for export are chosen by target, not by RUST_LOG: turning log
    // lines down to `warn` must not silently stop the traces.
    let otel = exports.traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("settings-sync"))
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(env!("CARGO_CRATE_NAME"), LevelFilter::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(logs),
        )
        .with(otel)
        .try_init();
    if let Some(provider) = &exports.traces {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    if let Some(provider) = &exports.metrics {
        opentelemetry::global::set_meter_provider(provider.clone());
    }
    for problem in problems {
        tracing::warn!(error = %problem, "OpenTelemetry export disabled");
    }
    if exports.traces.is_some() || exports.metrics.is_some() {
        tracing::info!(
            traces = exports.traces.is_some(),
            metrics = exports.metrics.is_some(),
            "exporting over OTLP/gRPC"
        );
    }
    Telemetry {
        traces: exports.traces,
        metrics: exports.metrics,
    }
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporters. Their
    /// shutdown blocks on the export, so it runs off the async workers.
    pub async fn shutdown(self) {
        let Telemetry { traces, metrics } = self;
        if traces.is_none() && metrics.is_none() {
            return;
        }
        let flushed = tokio::task::spawn_blocking(move || {
            if let Some(Err(error)) = traces.map(|p| p.shutdown_with_timeout(FLUSH_TIMEOUT)) {
                tracing::warn!(%error, "flushing spans at shutdown failed");
            }
            if let Some(Err(error)) = metrics.map(|p| p.shutdown_with_timeout(FLUSH_TIMEOUT)) {
                tracing::warn!(%error, "flushing metrics at shutdown failed");
            }
        });
        let _ = flushed.await;
    }
}

/// `error: cause: cause …`, for one log line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
