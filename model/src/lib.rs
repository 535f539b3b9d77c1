//! An exhaustive model check of the settings-sync protocol.
//!
//! Clients edit (and send, or not), sync and reset; a network loses,
//! reorders and duplicates messages; one backend merges. Every reachable
//! state is explored breadth-first and the properties P1–P5 of
//! `docs/protocol.md` are checked on every state and transition. The
//! correct rules are the protocol crate's own code; the seed post's rules
//! and planted bugs are mutations the checker must catch
//! (`docs/model-check.md`).
//!
//! - [`state`]: clients, backend, network and the causal history.
//! - [`rules`]: the pluggable merge and adopt rules.
//! - [`real`]: the correct rules, by calling `settings_sync_protocol`.
//! - [`step`]: the actions and the transitions they make.
//! - [`canon`]: symmetry reduction and fingerprints.
//! - [`properties`]: P1 to P5.
//! - [`check`]: the whole-document model as the search sees it; bounds and
//!   outcomes.
//! - [`search`]: the breadth-first search of any model, and counterexamples
//!   as step-by-step histories.
//! - [`field`]: the same for the per-field mode: patches of two fields.

pub mod canon;
pub mod check;
pub mod field;
pub mod properties;
pub mod real;
pub mod rules;
pub mod search;
pub mod state;
pub mod step;

pub use check::{Bounds, Counterexample, Outcome, check};
pub use properties::Property;
pub use rules::Rules;
