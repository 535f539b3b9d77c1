//! The model check of the per-field mode (`docs/protocol.md`, "Per-field
//! merge"): documents of two fields; clients set or delete one field, or set
//! both, under one stamp per patch, re-send their unconfirmed edits, and
//! reset; the network loses, reorders and duplicates; one backend merges
//! field by field. P1–P5 are checked per field, with P6 (an acknowledged
//! edit of a field is lost only to a larger write of that field). Patches
//! only: whole-document writes in this mode are covered by the protocol
//! crate's property tests, and whole-document mode by [`crate::check`].
//!
//! - [`state`]: documents of fields, patches, unconfirmed edits.
//! - [`rules`]: the correct rules and the planted bugs.
//! - [`real`]: the correct rules, by calling `settings_sync_protocol::fields`.
//! - [`step`]: actions and transitions.
//! - [`canon`]: the whole-document model's reductions, per field.
//! - [`properties`]: P1 to P6.

pub mod canon;
pub mod properties;
pub mod real;
pub mod rules;
pub mod state;
pub mod step;

pub use rules::FieldRules;

use crate::check::{Bounds, Outcome};
use crate::properties::Violation;
use crate::search::{Model, search};
use state::State;
use step::Action;

/// The test suite checks this mode at two bounds, as two tests that run in
/// parallel: each edit here has ten forms (five patches, sent or not), so
/// three clients *and* three edits would take an hour. Three clients, two
/// edits (of one field or of two, sets and deletes), one reset, two in
/// flight:
pub const THREE_CLIENTS: Bounds = Bounds {
    clients: 3,
    edits: 2,
    resets: 1,
    in_flight: 2,
};

/// Two clients, three edits, one reset, two in flight: longer histories
/// (an edit of each field, then one of either).
pub const THREE_EDITS: Bounds = Bounds {
    clients: 2,
    edits: 3,
    resets: 1,
    in_flight: 2,
};

/// `SETTINGS_SYNC_FIELD_MODEL_BOUNDS` (`clients,edits,resets,in_flight`)
/// if set, else `default`.
pub fn bounds_from_env(default: Bounds) -> Bounds {
    match std::env::var("SETTINGS_SYNC_FIELD_MODEL_BOUNDS") {
        Ok(text) => Bounds::parse(&text).unwrap_or_else(|e| panic!("{e}")),
        Err(_) => default,
    }
}

/// Every reachable state of the per-field mode under `rules`.
pub fn check(rules: FieldRules, bounds: Bounds) -> Outcome<FieldRules> {
    Outcome::new(rules, bounds, search(&FieldModel { rules, bounds }))
}

struct FieldModel {
    rules: FieldRules,
    bounds: Bounds,
}

impl Model for FieldModel {
    type State = State;
    type Action = Action;

    fn root(&self) -> State {
        let mut root = State::initial(self.bounds.clients);
        canon::canonicalize(&mut root);
        root
    }

    fn actions(&self, state: &State, out: &mut Vec<Action>) {
        step::actions(state, self.bounds.limits(), out);
    }

    fn step(&self, state: &State, action: Action) -> State {
        step::step(state, self.rules, self.bounds.limits(), action)
    }

    fn canonicalize(&self, state: &mut State) {
        canon::canonicalize(state);
    }

    fn rename_writers(&self, state: &mut State) {
        canon::rename_writers(state);
    }

    fn check_state(&self, state: &State) -> Result<(), Violation> {
        properties::check_state(state, self.rules)
    }

    fn check_transition(
        &self,
        before: &State,
        after: &State,
        action: Action,
    ) -> Result<(), Violation> {
        let delivered = match action {
            Action::Deliver { message, .. } => Some(message),
            _ => None,
        };
        properties::check_transition(before, after, self.rules, delivered)
    }

    fn past_ceiling(&self, state: &State) -> bool {
        state.max_clock() > self.bounds.clock_ceiling()
    }
}
