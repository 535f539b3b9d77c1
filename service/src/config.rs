//! Command line and environment. Every flag has an environment variable,
//! so a deployment configures the server without a command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use settings_sync_protocol::{MergePolicy, ValueLimits};

use crate::api::Limits;
use crate::feed::FeedConfig;

#[derive(Debug, Parser)]
#[command(
    name = "settings-sync",
    version,
    about = "Keeps per-user settings documents consistent.",
    after_help = crate::cli::EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print one document.
    #[command(after_help = "Example:\n  settings-sync get acme alice alerts\n\n\
        A missing document exits with code 3.")]
    Get(crate::cli::GetArgs),
    /// Write a document, as a client would, and print the outcome.
    #[command(after_help = "Examples:\n  \
        settings-sync put acme alice alerts '{\"airports\":[\"SEA\"]}'\n  \
        settings-sync put acme alice alerts '{}' --clock 7 --writer my-tab")]
    Put(crate::cli::PutArgs),
    /// Delete a document: write a tombstone, stamped like any write.
    #[command(after_help = "Example:\n  settings-sync delete acme alice alerts\n\n\
        Like put, it reads the stored stamp first and writes past it, unless \
        --clock and --writer give the stamp.")]
    Delete(crate::cli::DeleteArgs),
    /// Write named top-level fields of a document, as a per-field client
    /// would (docs/protocol.md, "Per-field merge"), and print the outcome.
    #[command(after_help = "Examples:\n  \
        settings-sync patch acme alice alerts --set email=true --set 'airports=[\"SEA\"]'\n  \
        settings-sync patch acme alice alerts --delete theme --clock 7 --writer my-tab\n\n\
        Like put, it reads the stored document first and writes past its \
        clock, unless --clock and --writer give the stamp. Each field is \
        decided on its own (field_decisions). The first patch opts the \
        document into per-field mode: whole-document writes (put, delete) \
        are then refused (until a per-field client of the client crate writes \
        the whole document; this CLI can not).")]
    Patch(crate::cli::PatchArgs),
    /// List documents whose value contains a JSON fragment.
    #[command(
        after_help = "Example:\n  settings-sync query acme alerts '{\"airports\":[\"SEA\"]}'"
    )]
    Query(crate::cli::QueryArgs),
    /// Print a document's overridden values (writes that lost), newest
    /// first: one JSON line each, with the id `reapply` takes.
    #[command(after_help = "Example:\n  settings-sync overrides acme alice alerts")]
    Overrides(crate::cli::OverridesArgs),
    /// Write an overridden value again, under a fresh stamp (an ordinary
    /// Sync), and print the outcome.
    #[command(
        after_help = "Example:\n  settings-sync reapply acme alice alerts 17\n\n\
        An id the document's override log does not hold exits with code 3."
    )]
    Reapply(crate::cli::ReapplyArgs),
    /// Follow a tenant's changes: one JSON line per change on stdout,
    /// progress on stderr.
    #[command(after_help = "Examples:\n  \
        settings-sync watch acme                       # changes from now on\n  \
        settings-sync watch acme --owner alice --after-revision 41   # resume after revision 41\n\n\
        A watcher that falls behind, or loses the server, exits with the \
        revision to resume from on stderr.")]
    Watch(crate::cli::WatchArgs),
    /// Ask the server's gRPC health service whether it serves (exit 0), as
    /// grpc-health-probe does.
    #[command(
        after_help = "Example:\n  settings-sync health --server http://prefs.apps.svc:50051\n\n\
        Not serving, or unreachable, exits with code 6."
    )]
    Health(crate::cli::HealthArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `postgres://…` or `sqlite://…`. Default: SQLite in --data-dir.
    #[arg(long, env = "SETTINGS_SYNC_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded SQLite database when no URL is given.
    #[arg(
        long,
        env = "SETTINGS_SYNC_DATA_DIR",
        default_value = "settings-sync-data"
    )]
    pub data_dir: PathBuf,
    /// Connections in the database pool.
    #[arg(long, env = "SETTINGS_SYNC_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the gRPC port (port 0 picks a free one).
    #[arg(long, env = "SETTINGS_SYNC_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Do not migrate at start (a deployment that runs `migrate` once per version).
    #[arg(long, env = "SETTINGS_SYNC_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,
    /// Largest accepted document, in bytes of JSON.
    #[arg(long, env = "SETTINGS_SYNC_MAX_DOCUMENT_BYTES", default_value_t = 64 * 1024)]
    pub max_document_bytes: usize,
    /// Deepest accepted nesting of JSON arrays and objects.
    #[arg(long, env = "SETTINGS_SYNC_MAX_JSON_DEPTH", default_value_t = 32)]
    pub max_json_depth: usize,
    /// How far one write may move a document's clock forward.
    #[arg(
        long,
        env = "SETTINGS_SYNC_MAX_CLOCK_JUMP",
        default_value_t = 1_000_000
    )]
    pub max_clock_jump: u64,
    /// Most keys in one BatchGet.
    #[arg(long, env = "SETTINGS_SYNC_MAX_BATCH_KEYS", default_value_t = 100)]
    pub max_batch_keys: usize,
    /// How long Watch can replay changes from, in seconds; older history is
    /// dropped and a watcher asking for it gets OUT_OF_RANGE.
    #[arg(
        long,
        env = "SETTINGS_SYNC_CHANGE_RETENTION_SECONDS",
        default_value_t = 86_400
    )]
    pub change_retention_seconds: u64,
    /// How long overridden values (the override log, ListOverrides) are
    /// kept, in seconds.
    #[arg(
        long,
        env = "SETTINGS_SYNC_OVERRIDE_RETENTION_SECONDS",
        default_value_t = 7 * 86_400
    )]
    pub override_retention_seconds: u64,
    /// Most overridden values kept per document (the newest).
    #[arg(
        long,
        env = "SETTINGS_SYNC_MAX_OVERRIDES_PER_DOCUMENT",
        default_value_t = 20
    )]
    pub max_overrides_per_document: usize,
    /// How often each watched tenant's change history is polled, in milliseconds.
    #[arg(long, env = "SETTINGS_SYNC_WATCH_POLL_MS", default_value_t = 50)]
    pub watch_poll_ms: u64,
    /// How long an idle Watch stream waits before a progress message, in milliseconds.
    #[arg(long, env = "SETTINGS_SYNC_WATCH_PROGRESS_MS", default_value_t = 5000)]
    pub watch_progress_ms: u64,
    /// Changes buffered per tenant for slow watchers before they are cut off.
    #[arg(long, env = "SETTINGS_SYNC_WATCH_BUFFER", default_value_t = 1024)]
    pub watch_buffer: usize,
    /// Bytes of changes buffered per tenant for slow watchers before they
    /// are cut off; also bounds a page of a watcher's replay (at least one
    /// document of --max-document-bytes).
    #[arg(long, env = "SETTINGS_SYNC_WATCH_BUFFER_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub watch_buffer_bytes: usize,
    /// PostgreSQL: how long a batch of Syncs (or Gets) may wait for more
    /// requests while other batches run, in microseconds. 0: none; batches
    /// still form from the requests that queue while others run.
    #[arg(long, env = "SETTINGS_SYNC_BATCH_WINDOW_US", default_value_t = 0)]
    pub batch_window_us: u64,
    /// PostgreSQL: most requests grouped into one statement; 1 turns
    /// batching off (one statement per request).
    #[arg(long, env = "SETTINGS_SYNC_BATCH_MAX", default_value_t = 64)]
    pub batch_max: usize,
    /// PostgreSQL: batches running at once, per kind (Sync, Get); each
    /// holds a pool connection while it runs. With 1 the next batch forms
    /// while one runs, and `--batch-window-us` has no effect.
    #[arg(long, env = "SETTINGS_SYNC_BATCH_IN_FLIGHT", default_value_t = 1)]
    pub batch_in_flight: usize,
    /// PostgreSQL: group Gets into one read as well.
    #[arg(long, env = "SETTINGS_SYNC_BATCH_GETS", default_value_t = true, action = clap::ArgAction::Set)]
    pub batch_gets: bool,
    /// How often readiness checks the database, in milliseconds.
    #[arg(long, env = "SETTINGS_SYNC_HEALTH_INTERVAL_MS", default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(
        long,
        env = "SETTINGS_SYNC_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 30
    )]
    pub shutdown_grace_seconds: u64,
    /// A browser origin (`scheme://host[:port]`) allowed to call over
    /// gRPC-Web; repeat for more (env: comma-separated). None by default:
    /// no page may call until its origin is listed.
    #[arg(
        long = "cors-allowed-origin",
        env = "SETTINGS_SYNC_CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allowed_origins: Vec<String>,
    #[command(flatten)]
    pub trace: crate::telemetry::TraceArgs,
    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub caps: crate::limits::LimitArgs,
}

impl DatabaseArgs {
    /// The URL to open: the given one, or the embedded default.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("settings.db").display()),
        }
    }
}

impl ServeArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            value: ValueLimits {
                max_bytes: self.max_document_bytes,
                max_depth: self.max_json_depth,
            },
            merge: MergePolicy {
                max_clock_jump: self.max_clock_jump,
                max_stored_bytes: self.max_document_bytes,
            },
            max_batch_keys: self.max_batch_keys,
        }
    }

    pub fn feed_config(&self) -> FeedConfig {
        FeedConfig {
            poll: Duration::from_millis(self.watch_poll_ms.max(1)),
            progress: Duration::from_millis(self.watch_progress_ms.max(1)),
            buffer: self.watch_buffer.max(1),
            buffer_bytes: self.watch_buffer_bytes,
            batch: FeedConfig::batch_for(self.watch_buffer_bytes, self.max_document_bytes),
        }
    }

    pub fn batch_config(&self) -> crate::store::BatchConfig {
        crate::store::BatchConfig {
            window: Duration::from_micros(self.batch_window_us),
            max: self.batch_max,
            in_flight: self.batch_in_flight.max(1),
            gets: self.batch_gets,
        }
    }

    pub fn allowed_origins(&self) -> Result<crate::cors::AllowedOrigins, crate::cors::OriginError> {
        crate::cors::AllowedOrigins::parse(&self.cors_allowed_origins)
    }

    pub fn change_retention(&self) -> Duration {
        Duration::from_secs(self.change_retention_seconds)
    }

    pub fn override_retention(&self) -> crate::store::OverrideRetention {
        crate::store::OverrideRetention {
            retention: Duration::from_secs(self.override_retention_seconds),
            max_per_document: self.max_overrides_per_document,
        }
    }

    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms.max(10))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}
