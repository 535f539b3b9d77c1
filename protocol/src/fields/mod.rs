//! The opt-in per-field mode (`docs/protocol.md`, "Per-field merge"): a
//! document is a map of top-level fields, each its own Lamport
//! last-writer-wins register, under a document-level *floor* set by
//! whole-document writes. Every write still carries one stamp.
//!
//! The state is a lattice and the backend's merge is its join, so stores
//! keep one atomic conditional update per document and replicas need no
//! coordination, exactly as in whole-document mode; a document only ever
//! written whole behaves exactly as in that mode.
//!
//! - [`document`]: the field-merged state, the writes (a patch or a whole
//!   document) and the join.
//! - [`decide`]: what a write did, the document as a whole and field by field.
//! - [`replica`]: the client half: edits, the per-field adopt rule and the
//!   writes still to confirm.

pub mod decide;
pub mod document;
pub mod replica;

#[cfg(test)]
mod laws;

pub use decide::{FieldReport, merge};
pub use document::{
    Change, FieldDocument, FieldEntry, FieldOp, FieldWrite, Floor, NotJoinForm, Patch,
    TOMBSTONE_BYTES,
};
pub use replica::{FieldReplica, adopt, confirmed};
