//! Breadth-first search of every reachable state, checking P1 and P5 on
//! each state and P2–P4 on each transition. The first violation is returned
//! with a shortest history that reaches it (BFS finds shortest first).
//!
//! A hand-written search rather than `stateright`: P2–P4 are properties of
//! transitions, which stateright checks only on states (it would have to
//! carry the previous state inside each state), and the reductions in
//! `canon` need full control of what is stored.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::canon::{canonicalize, fingerprint};
use crate::history;
use crate::properties::{Violation, check_state, check_transition};
use crate::rules::Rules;
use crate::state::{MAX_CLIENTS, MAX_EDITS, MAX_IN_FLIGHT, State};
use crate::step::{Action, Limits, actions, step};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub clients: usize,
    pub edits: usize,
    pub resets: usize,
    pub in_flight: usize,
}

impl Bounds {
    /// The bounds the test suite checks: 3 clients, 3 edits, 1 reset,
    /// 3 messages in flight.
    pub const DEFAULT: Bounds = Bounds {
        clients: 3,
        edits: 3,
        resets: 1,
        in_flight: 3,
    };

    /// `clients,edits,resets,in_flight`, as in `SETTINGS_SYNC_MODEL_BOUNDS`.
    pub fn parse(text: &str) -> Result<Bounds, String> {
        let n: Vec<usize> = text
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bounds {text:?}: {e}"))?;
        let [clients, edits, resets, in_flight] = n[..] else {
            return Err(format!(
                "bounds {text:?}: expected clients,edits,resets,in_flight"
            ));
        };
        if !(1..=MAX_CLIENTS).contains(&clients) || edits > MAX_EDITS || in_flight > MAX_IN_FLIGHT {
            return Err(format!(
                "bounds {text:?}: at most {MAX_CLIENTS} clients, {MAX_EDITS} edits, {MAX_IN_FLIGHT} in flight"
            ));
        }
        Ok(Bounds {
            clients,
            edits,
            resets,
            in_flight,
        })
    }

    /// `SETTINGS_SYNC_MODEL_BOUNDS` if set, else the default.
    pub fn from_env() -> Bounds {
        match std::env::var("SETTINGS_SYNC_MODEL_BOUNDS") {
            Ok(text) => Bounds::parse(&text).unwrap_or_else(|e| panic!("{e}")),
            Err(_) => Bounds::DEFAULT,
        }
    }

    pub fn limits(self) -> Limits {
        Limits {
            edits: self.edits,
            resets: self.resets,
            in_flight: self.in_flight,
        }
    }

    /// The seed's rules let clocks grow with every round trip; the search
    /// stops at this clock. The correct rules never get near it: every
    /// clock is at most the number of edits (`truncated` stays 0).
    pub fn clock_ceiling(self) -> u8 {
        (4 * self.edits + 8).min(200) as u8
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub rules: Rules,
    pub bounds: Bounds,
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

#[derive(Debug)]
pub struct Counterexample {
    pub violation: Violation,
    /// One line per action, each with the state after it.
    pub history: String,
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

pub fn check(rules: Rules, bounds: Bounds) -> Outcome {
    let started = Instant::now();
    let limits = bounds.limits();
    let ceiling = bounds.clock_ceiling();
    let mut root = State::initial(bounds.clients, rules.uses_writers());
    canonicalize(&mut root, rules.uses_writers());
    let root_fp = fingerprint(&root);
    let mut visited = Visited::default();
    visited.insert(root_fp, root_fp);
    let mut outcome = Outcome {
        rules,
        bounds,
        states: 1,
        transitions: 0,
        truncated: 0,
        depth: 0,
        elapsed: Duration::ZERO,
        counterexample: None,
    };
    let found = |visited: &Visited, at: u128, last: Option<Action>, violation: Violation| {
        Some(history::counterexample(
            rules, bounds, &root, visited, at, last, violation,
        ))
    };
    if let Err(violation) = check_state(&root, rules) {
        outcome.counterexample = found(&visited, root_fp, None, violation);
    }
    let mut frontier = vec![(root_fp, root)];
    let mut enabled = Vec::new();
    'search: while !frontier.is_empty() && outcome.counterexample.is_none() {
        outcome.depth += 1;
        let mut next_level = Vec::new();
        for (here, state) in frontier {
            actions(&state, rules, limits, &mut enabled);
            for &action in &enabled {
                outcome.transitions += 1;
                let mut after = step(&state, rules, limits, action);
                let delivered = match action {
                    Action::Deliver { message, .. } => Some(message),
                    _ => None,
                };
                if let Err(v) = check_transition(&state, &after, rules, delivered) {
                    outcome.counterexample = found(&visited, here, Some(action), v);
                    break 'search;
                }
                if after.max_clock() > ceiling {
                    outcome.truncated += 1;
                    continue;
                }
                canonicalize(&mut after, rules.uses_writers());
                let there = fingerprint(&after);
                if visited.contains_key(&there) {
                    continue;
                }
                visited.insert(there, here);
                if let Err(v) = check_state(&after, rules) {
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

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bounds;
        write!(
            f,
            "{:?} rules, {} clients, {} edits, {} resets, {} in flight: {} states, {} transitions, depth {}, {} cut at the clock ceiling, in {:.1?}",
            self.rules,
            b.clients,
            b.edits,
            b.resets,
            b.in_flight,
            self.states,
            self.transitions,
            self.depth,
            self.truncated,
            self.elapsed
        )?;
        match &self.counterexample {
            None => write!(f, ": every property holds"),
            Some(c) => write!(
                f,
                "\n{:?} violated: {}\n{}",
                c.violation.property, c.violation.detail, c.history
            ),
        }
    }
}
