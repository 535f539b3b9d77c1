//! Breadth-first search of every reachable state, checking the properties
//! on each state and transition. The first violation found is returned with
//! the shortest history that reaches it.

use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::properties::{self, Violation, show};
use crate::rules::Rules;
use crate::state::{Action, Limits, Message, State};

#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub clients: usize,
    pub edits: usize,
    pub resets: u8,
    pub in_flight: usize,
}

impl Bounds {
    /// The bounds CI runs, each in well under a minute: three clients with
    /// two messages in flight, and two clients with three. (All of 3, 3, 1, 3
    /// at once is over 60 million states: behind SETTINGS_SYNC_MODEL_BOUNDS.)
    pub const CI: [Bounds; 2] = [
        Bounds {
            clients: 3,
            edits: 3,
            resets: 1,
            in_flight: 2,
        },
        Bounds {
            clients: 2,
            edits: 3,
            resets: 1,
            in_flight: 3,
        },
    ];

    /// `clients,edits,resets,in_flight`, e.g. from `SETTINGS_SYNC_MODEL_BOUNDS`.
    pub fn parse(text: &str) -> Option<Bounds> {
        let n: Vec<usize> = text
            .split(',')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        match n[..] {
            [clients, edits, resets, in_flight] if edits <= 16 => Some(Bounds {
                clients,
                edits,
                resets: u8::try_from(resets).ok()?,
                in_flight,
            }),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub states: usize,
    pub transitions: usize,
    pub elapsed: Duration,
    /// The first violation and the shortest history leading to it.
    pub counterexample: Option<(Violation, String)>,
}

/// Visited states are kept as 128-bit fingerprints with the step that first
/// reached them (as TLC does), so memory grows by a few dozen bytes a state;
/// only the frontier is held in full.
type Fingerprint = u128;

fn fingerprint(state: &State) -> Fingerprint {
    let mut low = DefaultHasher::new();
    state.hash(&mut low);
    let mut high = DefaultHasher::new();
    (0x5eed_u32, state).hash(&mut high);
    (u128::from(high.finish()) << 64) | u128::from(low.finish())
}

pub fn check(rules: Rules, bounds: Bounds) -> Outcome {
    let started = Instant::now();
    let limits = Limits {
        edits: bounds.edits,
        resets: bounds.resets,
        in_flight: bounds.in_flight,
    };
    let initial = State::initial(bounds.clients);
    let mut reached: HashMap<Fingerprint, Option<(Fingerprint, Action)>> = HashMap::new();
    reached.insert(fingerprint(&initial), None);
    let mut frontier = vec![initial.clone()];
    let mut transitions = 0;
    while !frontier.is_empty() {
        let mut next_level = Vec::new();
        for current in frontier {
            let here = fingerprint(&current);
            if let Some(found) = properties::convergence(&current, rules)
                .or_else(|| properties::nothing_lost(&current))
            {
                let text = history(&initial, &reached, here, None, rules);
                return finish(reached.len(), transitions, started, Some((found, text)));
            }
            for action in current.actions(limits) {
                transitions += 1;
                let after = current.step(rules, action);
                let delivered = match action {
                    Action::Deliver(message) => Some(message),
                    _ => None,
                };
                if let Some(found) = properties::transition(&current, &after, rules, delivered) {
                    let text = history(&initial, &reached, here, Some(action), rules);
                    return finish(reached.len(), transitions, started, Some((found, text)));
                }
                if let Entry::Vacant(slot) = reached.entry(fingerprint(&after)) {
                    slot.insert(Some((here, action)));
                    next_level.push(after);
                }
            }
        }
        frontier = next_level;
    }
    finish(reached.len(), transitions, started, None)
}

fn finish(
    states: usize,
    transitions: usize,
    started: Instant,
    counterexample: Option<(Violation, String)>,
) -> Outcome {
    Outcome {
        states,
        transitions,
        elapsed: started.elapsed(),
        counterexample,
    }
}

/// The actions from the initial state to the state `at` (and then `last`),
/// replayed one line each with the state after it.
fn history(
    initial: &State,
    reached: &HashMap<Fingerprint, Option<(Fingerprint, Action)>>,
    at: Fingerprint,
    last: Option<Action>,
    rules: Rules,
) -> String {
    let mut actions: Vec<Action> = last.into_iter().collect();
    let mut cursor = at;
    while let Some(Some((parent, action))) = reached.get(&cursor) {
        actions.push(*action);
        cursor = *parent;
    }
    actions.reverse();
    let mut text = format!("rules {rules:?}, from the start:\n");
    let mut state = initial.clone();
    for action in actions {
        state = state.step(rules, action);
        step_line(&mut text, &state, action);
    }
    text
}

fn step_line(text: &mut String, after: &State, action: Action) {
    let _ = writeln!(text, "  {:<44} -> {}", describe(action), summary(after));
}

fn describe(action: Action) -> String {
    match action {
        Action::Edit { client, send: true } => format!("client {client} edits and sends"),
        Action::Edit {
            client,
            send: false,
        } => format!("client {client} edits (not sent)"),
        Action::Sync { client } => format!("client {client} syncs"),
        Action::Reset { client } => format!("client {client} resets"),
        Action::Deliver(m) => format!("deliver {}", message(m)),
        Action::Lose(m) => format!("lose {}", message(m)),
        Action::Duplicate(m) => format!("duplicate {}", message(m)),
    }
}

fn message(m: Message) -> String {
    match m {
        Message::Request { from, held } => {
            format!("request c{from}:{}@{}", show(held.edit), held.stamp.clock)
        }
        Message::Response { to, held } => {
            format!("response ->c{to}:{}@{}", show(held.edit), held.stamp.clock)
        }
    }
}

fn summary(state: &State) -> String {
    let clients: Vec<String> = state
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| format!("c{i}={}@{}", show(c.held.edit), c.clock))
        .collect();
    format!(
        "backend={}@{} {} in-flight={}",
        show(state.backend.edit),
        state.backend.stamp.clock,
        clients.join(" "),
        state.network.len()
    )
}
