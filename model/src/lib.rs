//! An exhaustive model check of the settings-sync protocol.
//!
//! Clients edit (and send, or not), sync and reset; a network loses,
//! reorders and duplicates messages; a backend merges. Every reachable
//! state is explored breadth-first and the protocol's properties P1–P5
//! (docs/protocol.md) are checked on every state and transition.
//!
//! - [`rules`]: the merge and adopt rules: the real protocol crate's, and the
//!   seed post's two variants as mutations the checker must catch.
//! - [`state`]: clients, backend, network, and the actions between states.
//! - [`properties`]: the properties P1 to P5.
//! - [`check`]: the breadth-first search and counterexample histories.

pub mod check;
pub mod properties;
pub mod rules;
pub mod state;

pub use check::{Bounds, Outcome, check};
pub use rules::Rules;
