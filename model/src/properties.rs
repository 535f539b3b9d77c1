//! The protocol's properties (docs/protocol.md), as checks on a state or a
//! transition. Each returns a description of the violation, if any.

use crate::rules::{Held, Rules};
use crate::state::{Message, State, bit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    /// P1: after two clean sync rounds every client holds the backend's value.
    Convergence,
    /// P2: the backend never moves to a value causally before its current one.
    NoCausalRegression,
    /// P3: a client never moves to a value causally before the one it shows.
    NoFlicker,
    /// P4: the stored stamp never decreases, and a replayed request changes nothing.
    Monotonic,
    /// P5: every acknowledged write is stored or beaten by a larger stamp.
    NothingAcknowledgedLost,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub property: Property,
    pub detail: String,
}

fn violation(property: Property, detail: String) -> Option<Violation> {
    Some(Violation { property, detail })
}

/// `a` causally precedes `b`: `a` is in the causal past of `b`.
fn precedes(state: &State, a: Option<u8>, b: Option<u8>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => state.edits[b as usize].0 & bit(a) != 0,
        _ => false,
    }
}

/// P1, from `state`: two rounds in which every client sends its state and
/// adopts the answer, with no loss. In-flight messages are ignored.
pub fn convergence(state: &State, rules: Rules) -> Option<Violation> {
    let mut clean = state.clone();
    clean.network.clear();
    for _ in 0..2 {
        for client in 0..clean.clients.len() as u8 {
            let held = clean.clients[client as usize].held;
            clean.backend_receive(rules, held);
            let answer = clean.backend;
            clean.client_receive(rules, client, answer);
        }
    }
    let backend = clean.backend.edit;
    let diverged: Vec<_> = clean
        .clients
        .iter()
        .map(|c| c.held.edit)
        .filter(|e| *e != backend)
        .collect();
    if diverged.is_empty() {
        return None;
    }
    violation(
        Property::Convergence,
        format!(
            "after two clean rounds the backend holds {} but clients hold {}",
            show(backend),
            list(&diverged)
        ),
    )
}

/// P2, P3 and P4 on the transition `before` → `after`.
pub fn transition(
    before: &State,
    after: &State,
    rules: Rules,
    delivered: Option<Message>,
) -> Option<Violation> {
    let (old, new) = (before.backend.edit, after.backend.edit);
    if old != new && precedes(after, new, old) {
        return violation(
            Property::NoCausalRegression,
            format!(
                "the backend went from {} back to {}, which precedes it",
                show(old),
                show(new)
            ),
        );
    }
    for (i, (b, a)) in before.clients.iter().zip(&after.clients).enumerate() {
        let same_incarnation = b.incarnation == a.incarnation;
        if same_incarnation
            && b.held.edit != a.held.edit
            && precedes(after, a.held.edit, b.held.edit)
        {
            return violation(
                Property::NoFlicker,
                format!(
                    "client {i} went from {} back to {}, which it had made or seen before",
                    show(b.held.edit),
                    show(a.held.edit)
                ),
            );
        }
    }
    if after.backend.stamp < before.backend.stamp {
        return violation(
            Property::Monotonic,
            format!(
                "the stored stamp fell from {:?} to {:?}",
                before.backend.stamp, after.backend.stamp
            ),
        );
    }
    if let Some(Message::Request { held, .. }) = delivered {
        let mut replay = after.clone();
        replay.backend_receive(rules, held);
        if replay.backend != after.backend {
            return violation(
                Property::Monotonic,
                format!(
                    "replaying a request for {} changed the backend",
                    show(held.edit)
                ),
            );
        }
    }
    None
}

/// P5 on a state: each acknowledged edit is stored, or the stored edit was
/// made with a larger stamp than it.
pub fn nothing_lost(state: &State) -> Option<Violation> {
    let stored: Held = state.backend;
    for edit in 0..state.edits.len() as u8 {
        if state.acknowledged & bit(edit) == 0 || stored.edit == Some(edit) {
            continue;
        }
        let beaten = stored
            .edit
            .is_some_and(|s| state.edits[s as usize].1 > state.edits[edit as usize].1);
        if !beaten {
            return violation(
                Property::NothingAcknowledgedLost,
                format!(
                    "acknowledged edit e{edit} was replaced by {} without a larger stamp",
                    show(stored.edit)
                ),
            );
        }
    }
    None
}

pub fn show(edit: Option<u8>) -> String {
    edit.map_or("nothing".into(), |e| format!("e{e}"))
}

fn list(edits: &[Option<u8>]) -> String {
    edits
        .iter()
        .map(|e| show(*e))
        .collect::<Vec<_>>()
        .join(", ")
}
