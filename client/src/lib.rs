//! The client half of the settings-sync protocol, for Rust callers.
//!
//! - [`Client`]: typed calls over one gRPC channel.
//! - [`LocalDocument`]: a local copy of one document: optimistic edits, sync,
//!   the adopt rule, and a fresh writer id per incarnation.
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
mod local;
pub mod trace;

pub use client::{Client, Error, QueryPage, SyncReply, TracedChannel};
pub use local::LocalDocument;
pub use settings_sync_proto::v1 as wire;
