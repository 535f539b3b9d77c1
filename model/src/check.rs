//! The whole-document model check: the model of `state` and `step` under
//! pluggable `rules`, searched by `search`, with the bounds both models use
//! and the outcome they report.

use std::fmt;
use std::time::Duration;

use crate::canon::{self, canonicalize};
use crate::properties::{check_state, check_transition};
use crate::rules::Rules;
use crate::search::{Model, search};
use crate::state::{MAX_CLIENTS, MAX_EDITS, MAX_IN_FLIGHT, State};
use crate::step::{Action, Limits, actions, step};

pub use crate::search::Counterexample;

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
pub struct Outcome<R = Rules> {
    pub rules: R,
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

impl<R> Outcome<R> {
    pub fn new(rules: R, bounds: Bounds, search: crate::search::Search) -> Self {
        Outcome {
            rules,
            bounds,
            states: search.states,
            transitions: search.transitions,
            truncated: search.truncated,
            depth: search.depth,
            elapsed: search.elapsed,
            counterexample: search.counterexample,
        }
    }
}

/// Every reachable state of whole-document mode under `rules`.
pub fn check(rules: Rules, bounds: Bounds) -> Outcome {
    Outcome::new(rules, bounds, search(&WholeDocument { rules, bounds }))
}

/// The whole-document model, as the search sees it.
struct WholeDocument {
    rules: Rules,
    bounds: Bounds,
}

impl Model for WholeDocument {
    type State = State;
    type Action = Action;

    fn root(&self) -> State {
        let mut root = State::initial(self.bounds.clients, self.rules.uses_writers());
        canonicalize(&mut root, self.rules.uses_writers());
        root
    }

    fn actions(&self, state: &State, out: &mut Vec<Action>) {
        actions(state, self.rules, self.bounds.limits(), out);
    }

    fn step(&self, state: &State, action: Action) -> State {
        step(state, self.rules, self.bounds.limits(), action)
    }

    fn canonicalize(&self, state: &mut State) {
        canonicalize(state, self.rules.uses_writers());
    }

    fn rename_writers(&self, state: &mut State) {
        if self.rules.uses_writers() {
            canon::rename_writers(state);
        }
    }

    fn check_state(&self, state: &State) -> Result<(), crate::properties::Violation> {
        check_state(state, self.rules)
    }

    fn check_transition(
        &self,
        before: &State,
        after: &State,
        action: Action,
    ) -> Result<(), crate::properties::Violation> {
        let delivered = match action {
            Action::Deliver { message, .. } => Some(message),
            _ => None,
        };
        check_transition(before, after, self.rules, delivered)
    }

    fn past_ceiling(&self, state: &State) -> bool {
        state.max_clock() > self.bounds.clock_ceiling()
    }
}

impl<R: fmt::Debug> fmt::Display for Outcome<R> {
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
