//! The settings-sync protocol rules, free of I/O.
//!
//! A document is a Lamport-timestamped last-writer-wins register: every write
//! carries a [`Stamp`] `(clock, writer)`, stamps are totally ordered, and the
//! backend keeps whichever write has the larger stamp. See `docs/protocol.md`.
//!
//! - [`document`]: a stored document with its revision.
//! - [`key`]: document keys `(tenant, owner, name)`.
//! - [`stamp`]: clocks, writer ids and the total order on stamps.
//! - [`value`]: document values (a JSON object, or a tombstone).
//! - [`merge`]: the backend's merge and its decision.
//! - [`replica`]: the client half: local edits and the adopt rule.
//! - [`overrides`]: which writes a merge made lose, and how.
//! - [`contains`]: JSON containment, the filter of the `Query` read.
//! - [`fields`]: the opt-in per-field mode: patches, per-field stamps and
//!   their merge (the rules; the API carries them in a later release).

pub mod contains;
pub mod document;
pub mod fields;
pub mod key;
pub mod merge;
pub mod overrides;
pub mod replica;
pub mod stamp;
pub mod value;

pub use document::Document;
pub use key::{DocumentKey, Id, IdError};
pub use merge::{Decision, MergeError, MergePolicy, Versioned, merge};
pub use replica::Replica;
pub use stamp::{Clock, ClockError, Stamp, WriterId, WriterIdError};
pub use value::{Value, ValueError, ValueLimits};
