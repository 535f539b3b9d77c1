//! The settings-sync service.
//!
//! - [`store`]: documents in PostgreSQL or SQLite behind one trait.
//! - [`api`]: the `settingssync.v1.SettingsSync` gRPC service: parses
//!   requests into domain types, calls the store, maps errors to statuses.
//! - [`feed`]: per-tenant change feeds behind the Watch streams.
//! - [`server`]: binds, serves with health and reflection, shuts down gracefully.
//! - [`config`]: command line and environment.
//! - [`cli`]: the small client subcommands (`get`, `put`, `delete`, `query`,
//!   `watch`), their one-line errors and exit codes.
//! - [`telemetry`]: logs, and OpenTelemetry traces and metrics over OTLP.
//! - [`auth`]: bearer-token authentication and the authorization rules.
//! - [`tls`]: TLS (optionally mutual) on the gRPC port, certificates reloaded on change.
//! - [`cors`]: the browser-origin allow-list for gRPC-Web callers.
//! - [`limits`]: per-identity rate limits and Watch stream caps.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cors;
pub mod feed;
pub mod limits;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
