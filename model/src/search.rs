//! The breadth-first search, for any model: every reachable state once
//! (after canonicalization), the state properties on each, the transition
//! properties on each transition. The first violation is returned with a
//! shortest history that reaches it (BFS finds shortest first).
//!
//! A hand-written search rather than `stateright`: P2–P4 are properties of
//! transitions, which stateright checks only on states (it would have to
//! carry the previous state inside each state), and the reductions need
//! full control of what is stored.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

use crate::canon::fingerprint;
use crate::properties::Violation;

/// What the search needs of a model.
pub trait Model {
    type State: Copy + Hash + fmt::Display;
    type Action: Copy + fmt::Display;

    /// The initial state, canonical.
    fn root(&self) -> Self::State;
    fn actions(&self, state: &Self::State, out: &mut Vec<Self::Action>);
    /// The state after `action`, not yet canonical (so client indices still
    /// match `state`'s, which the transition properties rely on).
    fn step(&self, state: &Self::State, action: Self::Action) -> Self::State;
    fn canonicalize(&self, state: &mut Self::State);
    /// Renames writers densely in order, leaving client indices alone: the
    /// form a history prints.
    fn rename_writers(&self, state: &mut Self::State);
    fn check_state(&self, state: &Self::State) -> Result<(), Violation>;
    fn check_transition(
        &self,
        before: &Self::State,
        after: &Self::State,
        action: Self::Action,
    ) -> Result<(), Violation>;
    /// A clock passed the ceiling: the state is not followed.
    fn past_ceiling(&self, state: &Self::State) -> bool;
}

#[derive(Debug)]
pub struct Counterexample {
    pub violation: Violation,
    /// One line per action, each with the state after it.
    pub history: String,
}

/// What a search found.
#[derive(Debug)]
pub struct Search {
    /// Distinct canonical states reached.
    pub states: usize,
    pub transitions: usize,
    /// Transitions not followed because a clock passed the ceiling.
    pub truncated: usize,
    /// BFS levels explored.
    pub depth: usize,
    pub elapsed: Duration,
    pub counterexample: Option<Counterexample>,
}

/// The visited set maps each state's fingerprint to its parent's, for
/// histories. Fingerprints are already uniform hashes, so the map uses
/// their low bits as they are instead of hashing them again.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

pub type Visited = HashMap<u128, u128, BuildHasherDefault<PassThrough>>;

pub fn search<M: Model>(model: &M) -> Search {
    let started = Instant::now();
    let root = model.root();
    let root_fp = fingerprint(&root);
    let mut visited = Visited::default();
    visited.insert(root_fp, root_fp);
    let mut outcome = Search {
        states: 1,
        transitions: 0,
        truncated: 0,
        depth: 0,
        elapsed: Duration::ZERO,
        counterexample: None,
    };
    let found = |visited: &Visited, at: u128, last: Option<M::Action>, violation: Violation| {
        Some(counterexample(model, &root, visited, at, last, violation))
    };
    if let Err(violation) = model.check_state(&root) {
        outcome.counterexample = found(&visited, root_fp, None, violation);
    }
    let mut frontier = vec![(root_fp, root)];
    let mut enabled = Vec::new();
    'search: while !frontier.is_empty() && outcome.counterexample.is_none() {
        outcome.depth += 1;
        let mut next_level = Vec::new();
        for (here, state) in frontier {
            model.actions(&state, &mut enabled);
            for &action in &enabled {
                outcome.transitions += 1;
                let mut after = model.step(&state, action);
                if let Err(v) = model.check_transition(&state, &after, action) {
                    outcome.counterexample = found(&visited, here, Some(action), v);
                    break 'search;
                }
                if model.past_ceiling(&after) {
                    outcome.truncated += 1;
                    continue;
                }
                model.canonicalize(&mut after);
                let there = fingerprint(&after);
                if visited.contains_key(&there) {
                    continue;
                }
                visited.insert(there, here);
                if let Err(v) = model.check_state(&after) {
                    outcome.counterexample = found(&visited, there, None, v);
                    break 'search;
                }
                next_level.push((there, after));
            }
        }
        frontier = next_level;
    }
    outcome.states = visited.len();
    outcome.elapsed = started.elapsed();
    outcome
}

/// The history from `root` to the state `at` (then the action `last` from
/// it, for a transition's violation), as the lines a reader follows. The
/// search keeps only fingerprints, so a history is rebuilt by replaying:
/// from the root, at each step find an action whose canonical result is the
/// next state on the path.
///
/// The replay does not sort clients, so client `c1` is the same client on
/// every line; writer names are renumbered in order after each step, so
/// `w0` is always the smallest writer id *at that line* (a reset may insert
/// a new id anywhere).
fn counterexample<M: Model>(
    model: &M,
    root: &M::State,
    visited: &Visited,
    at: u128,
    last: Option<M::Action>,
    violation: Violation,
) -> Counterexample {
    use std::fmt::Write as _;

    let mut path = vec![at];
    while let Some(&parent) = visited.get(path.last().expect("never empty")) {
        if parent == *path.last().expect("never empty") {
            break;
        }
        path.push(parent);
    }
    path.reverse();

    let mut text = format!("  {:<44} {root}\n", "start");
    let mut state = *root;
    let mut enabled = Vec::new();
    for &target in &path[1..] {
        model.actions(&state, &mut enabled);
        let (action, next) = enabled
            .iter()
            .map(|&a| (a, model.step(&state, a)))
            .find(|(_, next)| {
                let mut c = *next;
                model.canonicalize(&mut c);
                fingerprint(&c) == target
            })
            .expect("every state on the path is reachable from its parent");
        state = next;
        model.rename_writers(&mut state);
        let _ = writeln!(text, "  {:<44} {state}", action.to_string());
    }

    // Recompute the violation on the replayed states, so its words use the
    // same client numbers as the lines above.
    let violation = match last {
        None => model.check_state(&state).err().unwrap_or(violation),
        Some(_) => {
            model.actions(&state, &mut enabled);
            let ending = enabled.iter().find_map(|&a| {
                let next = model.step(&state, a);
                match model.check_transition(&state, &next, a) {
                    Err(v) if v.property == violation.property => Some((a, next, v)),
                    _ => None,
                }
            });
            let (action, mut next, v) = ending.expect("the violating step is replayable");
            model.rename_writers(&mut next);
            let _ = writeln!(text, "  {:<44} {next}", action.to_string());
            v
        }
    };
    Counterexample {
        violation,
        history: text,
    }
}
