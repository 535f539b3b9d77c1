//! Binds the port, serves the API with health and reflection, and shuts
//! down gracefully: on the shutdown signal the health service turns
//! NOT_SERVING, the listener closes, and in-flight requests finish within
//! the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use settings_sync_proto::v1::settings_sync_server::SettingsSyncServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::SyncApi;
use crate::auth::{AuthArgs, Authenticated, Authenticator, TokenVerifier};
use crate::config::ServeArgs;
use crate::cors::{AllowedOrigins, CorsLayer};
use crate::feed::FeedHub;
use crate::limits::{RateLimiter, WatchSlots};
use crate::store::{Database, DocumentStore, OverrideRetention, PostgresStore};
use crate::telemetry::RpcTrace;
use crate::telemetry::db::DbSystem;
use crate::telemetry::metrics;

/// The name readiness probes ask the health service about. It is SERVING
/// only while the database answers; the overall status "" stays SERVING
/// while the process serves, for liveness.
pub const SERVICE_NAME: &str = "settingssync.v1.SettingsSync";

pub struct Application {
    listener: TcpListener,
    routes: Routes,
    health: HealthReporter,
    health_task: JoinHandle<()>,
    compaction_task: JoinHandle<()>,
    grace: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    origins: AllowedOrigins,
}

impl Application {
    /// Opens the store and binds the port. PostgreSQL is migrated unless
    /// `--skip-migrations`; an embedded database always is.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let pool_size = args.database.db_pool_size;
        match Database::parse(&args.database.url())? {
            Database::Postgres { url } => {
                let store = PostgresStore::connect_lazy(&url, pool_size)?
                    .with_batching(args.batch_config());
                metrics::observe_pool(store.pool(), DbSystem::Postgresql);
                if !args.skip_migrations {
                    store
                        .migrate()
                        .await
                        .context("migrating the PostgreSQL database")?;
                }
                Self::with_store(store, args).await
            }
            sqlite @ Database::Sqlite { .. } => {
                let store = sqlite.open_sqlite(pool_size).await.with_context(|| {
                    format!("opening the SQLite database {}", args.database.url())
                })?;
                metrics::observe_pool(store.pool(), DbSystem::Sqlite);
                Self::with_store(store, args).await
            }
        }
    }

    /// Serves `store` with the limits and address of `args` (no migration).
    pub async fn with_store<S: DocumentStore>(store: S, args: &ServeArgs) -> anyhow::Result<Self> {
        let verifier = token_verifier(&args.auth)?;
        let tls = args.tls.acceptor().context("setting up TLS")?;
        let origins = args
            .allowed_origins()
            .context("reading --cors-allowed-origin")?;
        let store = Arc::new(store);
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::Serving).await;
        // Not ready until the first database check passes.
        health
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        let health_task = tokio::spawn(watch_readiness(
            store.clone(),
            health.clone(),
            args.health_interval(),
        ));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(settings_sync_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let feeds = Arc::new(FeedHub::new(store.clone(), args.feed_config()));
        let compaction_task = tokio::spawn(compact_history(
            store.clone(),
            args.change_retention(),
            args.override_retention(),
        ));
        let watch_slots = Arc::new(WatchSlots::new(args.caps.max_watch_streams_per_identity));
        let api = SyncApi::new(store, feeds, args.limits()).with_watch_slots(watch_slots);
        let api =
            SettingsSyncServer::new(api).max_decoding_message_size(args.caps.max_message_bytes);
        let rate = RateLimiter::new(args.caps.rate_limit_per_second, args.caps.rate_limit_burst);
        let auth = Authenticator::new(verifier, args.tls.mutual(), rate);
        let api = Authenticated::new(api, auth);
        let routes = Routes::new(RpcTrace::new(api, args.trace))
            .add_service(health_service)
            .add_service(reflection);
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        Ok(Application {
            listener,
            routes,
            health,
            health_task,
            compaction_task,
            grace: args.shutdown_grace(),
            tls,
            origins,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            routes,
            health,
            health_task,
            compaction_task,
            grace,
            tls,
            origins,
        } = self;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            health_task.abort();
            compaction_task.abort();
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
                .await;
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "shutting down: draining in-flight requests"
            );
            let _ = stopping_tx.send(());
        };
        // gRPC-Web (browsers, HTTP/1.1 or 2) on the same port as gRPC; CORS
        // outside it, so a preflight is answered before translation.
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(CorsLayer::new(origins))
            .layer(tonic_web::GrpcWebLayer::new())
            .add_routes(routes);
        let serve: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = match tls {
            Some(acceptor) => Box::pin(server.serve_with_incoming_shutdown(
                crate::tls::incoming(incoming(listener), acceptor),
                signal,
            )),
            None => Box::pin(server.serve_with_incoming_shutdown(incoming(listener), signal)),
        };
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result.context("serving gRPC")?,
            () = async { if stopping_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
                tracing::warn!("grace period over: dropping requests still in flight");
            }
        }
        Ok(())
    }
}

/// The token verifier, or `None` in `--insecure-no-auth` mode. Refuses to
/// start with neither: an open server must be asked for, never a default.
fn token_verifier(args: &AuthArgs) -> anyhow::Result<Option<TokenVerifier>> {
    let verifier = TokenVerifier::from_args(args).context("loading the JWT keys")?;
    match (&verifier, args.insecure_no_auth) {
        (Some(_), _) => {
            if args.jwks_file.is_some()
                && (args.jwt_issuer.is_none() || args.jwt_audience.is_none())
            {
                tracing::warn!(
                    "--jwks-file without --jwt-issuer and --jwt-audience accepts tokens any issuer using these keys minted"
                );
            }
            Ok(verifier)
        }
        (None, true) => {
            tracing::warn!(
                "--insecure-no-auth: every caller may read and write every document; for local development only"
            );
            Ok(None)
        }
        (None, false) => anyhow::bail!(
            "no authentication configured: pass --jwks-file (or --jwt-secret-file for development), \
             or --insecure-no-auth to serve without authentication on a trusted machine"
        ),
    }
}

/// Keeps the service's health status in step with the database.
async fn watch_readiness<S: DocumentStore>(
    store: Arc<S>,
    health: HealthReporter,
    interval: Duration,
) {
    let mut serving = None;
    loop {
        let ok = store.ping().await.is_ok();
        if serving != Some(ok) {
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::info!(database_reachable = ok, "readiness changed");
            health.set_service_status(SERVICE_NAME, status).await;
            serving = Some(ok);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Drops change history older than the retention period, and overrides
/// past theirs or past the number kept per document, once a minute (or
/// more often under a shorter retention). Every replica runs it; the
/// statements are idempotent.
async fn compact_history<S: DocumentStore>(
    store: Arc<S>,
    retention: Duration,
    overrides: OverrideRetention,
) {
    let period = Duration::from_secs(60)
        .min(retention)
        .min(overrides.retention)
        .max(Duration::from_secs(1));
    let mut interval = tokio::time::interval(period);
    loop {
        interval.tick().await;
        if let Some(cutoff) = std::time::SystemTime::now().checked_sub(overrides.retention) {
            match store
                .prune_overrides(cutoff, overrides.max_per_document)
                .await
            {
                Ok(0) => {}
                Ok(dropped) => tracing::info!(dropped, "pruned overrides"),
                Err(error) => tracing::warn!(%error, "pruning overrides failed"),
            }
        }
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(retention) else {
            continue;
        };
        match store.compact(cutoff).await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(dropped, "compacted change history"),
            Err(error) => tracing::warn!(%error, "compacting change history failed"),
        }
    }
}

/// Accepted connections with Nagle's algorithm off: small gRPC frames must
/// not wait for delayed ACKs (tens of milliseconds per call otherwise).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}
