//! The client half of the settings-sync protocol, for Rust callers.
//!
//! - [`Client`]: typed calls over one gRPC channel.
//! - [`LocalDocument`]: a local copy of one document: optimistic edits, sync,
//!   the adopt rule, and a fresh writer id per incarnation.
//! - [`LocalFieldDocument`]: the same in the opt-in per-field mode: patches
//!   of named fields and the per-field adopt rule ([`Client::sync_fields`]).
//! - [`trace`]: every call carries the caller's W3C trace context.
//! - [`auth`]: and, when given one, a bearer token ([`Client::with_token`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), settings_sync_client::Error> {
//! use settings_sync_client::{Client, LocalDocument};
//! use settings_sync_protocol::{DocumentKey, Value};
//!
//! let mut client = Client::connect("http://127.0.0.1:50051").await?;
//! let key = DocumentKey::parse("acme", "alice", "alerts").unwrap();
//! let mut doc = LocalDocument::new(key);
//! doc.edit(Value::from_json(serde_json::json!({"airports": ["SEA"]})).unwrap());
//! doc.sync(&mut client).await?;
//! # Ok(()) }
//! ```

pub mod auth;
mod client;
mod connection;
mod local;
mod local_fields;
pub mod trace;

pub use client::{
    Client, Error, FieldSyncReply, OverridesPage, QueryPage, SyncReply, TracedChannel,
};
pub use connection::unavailable_if_connection_lost;
pub use local::LocalDocument;
pub use local_fields::LocalFieldDocument;
pub use settings_sync_proto::v1 as wire;
