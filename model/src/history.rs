//! Counterexample histories. The search keeps only fingerprints, so a
//! history is rebuilt by replaying: from the initial state, at each step find
//! an action whose (canonical) result is the next state on the path.
//!
//! The replay does not sort clients, so client `c1` is the same client on
//! every line; writer names are renumbered in order after each step, so
//! `w0` is always the smallest writer id *at that line* (a reset may insert
//! a new id anywhere).

use std::fmt::Write as _;

use crate::canon::{self, canonicalize, fingerprint};
use crate::check::{Bounds, Counterexample, Visited};
use crate::properties::{Violation, check_state, check_transition};
use crate::rules::Rules;
use crate::state::State;
use crate::step::{Action, actions, step};

/// The history from `root` to the state `at` (then the action `last` from
/// it, for a transition's violation), as the lines a reader follows.
pub fn counterexample(
    rules: Rules,
    bounds: Bounds,
    root: &State,
    visited: &Visited,
    at: u128,
    last: Option<Action>,
    violation: Violation,
) -> Counterexample {
    let mut path = vec![at];
    while let Some(&parent) = visited.get(path.last().expect("never empty")) {
        if parent == *path.last().expect("never empty") {
            break;
        }
        path.push(parent);
    }
    path.reverse();

    let limits = bounds.limits();
    let mut text = format!("  {:<44} {root}\n", "start");
    let mut state = *root;
    let mut enabled = Vec::new();
    for &target in &path[1..] {
        actions(&state, rules, limits, &mut enabled);
        let (action, next) = enabled
            .iter()
            .map(|&a| (a, step(&state, rules, limits, a)))
            .find(|(_, next)| {
                let mut c = *next;
                canonicalize(&mut c, rules.uses_writers());
                fingerprint(&c) == target
            })
            .expect("every state on the path is reachable from its parent");
        state = next;
        if rules.uses_writers() {
            canon::rename_writers(&mut state);
        }
        let _ = writeln!(text, "  {:<44} {state}", action.to_string());
    }

    // Recompute the violation on the replayed states, so its words use the
    // same client numbers as the lines above.
    let violation = match last {
        None => check_state(&state, rules).err().unwrap_or(violation),
        Some(_) => {
            actions(&state, rules, limits, &mut enabled);
            let ending = enabled.iter().find_map(|&a| {
                let next = step(&state, rules, limits, a);
                let delivered = match a {
                    Action::Deliver { message, .. } => Some(message),
                    _ => None,
                };
                match check_transition(&state, &next, rules, delivered) {
                    Err(v) if v.property == violation.property => Some((a, next, v)),
                    _ => None,
                }
            });
            let (action, mut next, v) = ending.expect("the violating step is replayable");
            if rules.uses_writers() {
                canon::rename_writers(&mut next);
            }
            let _ = writeln!(text, "  {:<44} {next}", action.to_string());
            v
        }
    };
    Counterexample {
        violation,
        history: text,
    }
}
