//! The protocol's properties P1–P5 (docs/protocol.md, docs/model-check.md),
//! as checks on a state or on a transition. Each returns the violation, if
//! any, in words.

use std::cell::RefCell;

use crate::canon::FastMap;

use settings_sync_protocol::Decision;

use crate::rules::Rules;
use crate::state::{Held, Kind, MAX_CLIENTS, Message, State, bit};
use crate::step::receive;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    /// P1: after two clean sync rounds every client holds the backend's value.
    Convergence,
    /// P2: the stored value never changes to one that causally precedes it.
    NoCausalRegression,
    /// P3: a client's value never changes to one that causally precedes it.
    NoFlicker,
    /// P4: the stored stamp never decreases; replaying a request changes
    /// nothing.
    Monotonic,
    /// P5: every acknowledged write is stored, or was superseded by a write
    /// with a larger stamp that it does not causally follow.
    NothingAcknowledgedLost,
    /// P6 (per-field mode): an acknowledged edit of a field is lost only to
    /// a write of that same field with a larger stamp, and a field is
    /// answered STALE only when that same field holds a larger stamp; so
    /// concurrent edits of different fields both survive.
    FieldIndependence,
    /// The backend never rejects a write from a correct client (a rejection
    /// would mean the model and the protocol disagree on what a client is).
    NoRejection,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: Property,
    pub detail: String,
}

pub fn violated(property: Property, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

/// The properties of a state: P1 and P5.
pub fn check_state(state: &State, rules: Rules) -> Result<(), Violation> {
    convergence(state, rules)?;
    nothing_acknowledged_lost(state)
}

/// P1. From `state`, two rounds in which each client in turn sends its
/// state, the backend merges it and answers, and the client receives the
/// answer, with nothing lost; in every order of the clients (the same order
/// both rounds). Every order, because P1 must not depend on who syncs
/// first, and because the symmetry reduction is sound only for properties
/// blind to client numbering. Messages still in flight are dropped: they
/// could be delayed past the rounds.
///
/// The rounds read only the backend and the clients' values, clocks and
/// writers, so results are memoized on those: many states share them.
pub fn convergence(state: &State, rules: Rules) -> Result<(), Violation> {
    type Key = (Rules, Held, [(Held, u8, u8); MAX_CLIENTS]);
    thread_local!(static MEMO: RefCell<FastMap<Key, Option<usize>>> = RefCell::default());
    let mut key: Key = (rules, state.backend, [(Held::default(), 0, 0); MAX_CLIENTS]);
    for (slot, c) in key.2.iter_mut().zip(state.clients()) {
        *slot = (c.held, c.clock, c.writer);
    }
    let n = state.clients_len as usize;
    let memo = MEMO.with(|m| m.borrow().get(&key).copied());
    let failing = memo.unwrap_or_else(|| {
        let failing = orders(n)
            .iter()
            .position(|order| !clean_rounds(state, rules, order).1.is_empty());
        MEMO.with(|m| m.borrow_mut().insert(key, failing));
        failing
    });
    let Some(failing) = failing else {
        return Ok(());
    };
    let order = &orders(n)[failing];
    let (clean, apart) = clean_rounds(state, rules, order);
    let order: Vec<String> = order.iter().map(|c| format!("c{c}")).collect();
    violated(
        Property::Convergence,
        format!(
            "after two clean sync rounds (order {}) the backend holds {} but {} (after the rounds: {clean})",
            order.join(", "),
            clean.backend,
            apart.join(", ")
        ),
    )
}

/// The two rounds in `order`: the state after them and the clients whose
/// value differs from the backend's.
fn clean_rounds(state: &State, rules: Rules, order: &[u8]) -> (State, Vec<String>) {
    let mut clean = *state;
    clean.set_network(&mut []);
    for _ in 0..2 {
        for &client in order {
            let sent = rules.outgoing(&clean.clients[client as usize]);
            rules.backend_receive(&mut clean.backend, sent);
            let answer = Message {
                kind: Kind::Response,
                client,
                held: clean.backend,
            };
            receive(&mut clean, rules, client, answer);
        }
    }
    let stored = clean.backend.edit;
    let apart = (clean.clients().iter().enumerate())
        .filter(|(_, c)| c.held.edit != stored)
        .map(|(i, c)| format!("c{i} holds {}", c.held))
        .collect();
    (clean, apart)
}

/// Every order of `n` clients.
pub fn orders(n: usize) -> Vec<Vec<u8>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for shorter in orders(n - 1) {
        for at in 0..=shorter.len() {
            let mut order = shorter.clone();
            order.insert(at, (n - 1) as u8);
            all.push(order);
        }
    }
    all
}

/// P5. For every edit `a` the backend answered APPLIED to, the stored edit
/// `s` is `a`, or has a larger stamp than `a` (the stamps writers gave
/// them) and does not causally precede `a`. Acknowledged edits that no
/// longer exist anywhere are checked through their summary (see
/// `canon::collect_dead_edits`).
pub fn nothing_acknowledged_lost(state: &State) -> Result<(), Violation> {
    let Some(stored) = state.backend.edit else {
        return match (state.acknowledged, state.dead_acknowledged) {
            (0, None) => Ok(()),
            _ => violated(
                Property::NothingAcknowledgedLost,
                "the backend acknowledged a write but stores nothing".into(),
            ),
        };
    };
    if let Some(largest) = state.dead_acknowledged {
        let record = state.record(stored);
        let follows = state.dead_acknowledged_past & bit(stored) != 0;
        if record.stamp <= largest || follows {
            return violated(
                Property::NothingAcknowledgedLost,
                format!(
                    "an acknowledged edit now gone (largest stamp {largest:?}) was overwritten by e{stored} (stamp {:?}){}",
                    record.stamp,
                    if follows {
                        ", which one of them causally follows"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    for a in 0..state.made {
        if state.acknowledged & bit(a) == 0 || a == stored {
            continue;
        }
        let larger = state.record(stored).stamp > state.record(a).stamp;
        if !larger || state.precedes(Some(stored), Some(a)) {
            return violated(
                Property::NothingAcknowledgedLost,
                format!(
                    "acknowledged e{a} (stamp {:?}) was overwritten by e{stored} (stamp {:?}){}",
                    state.record(a).stamp,
                    state.record(stored).stamp,
                    if larger {
                        ", which it causally follows"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    Ok(())
}

/// The properties of a transition `before` → `after` by `action`: P2, P3,
/// P4, and no rejection. `after` is not yet canonical, so client indices
/// agree.
pub fn check_transition(
    before: &State,
    after: &State,
    rules: Rules,
    delivered: Option<Message>,
) -> Result<(), Violation> {
    let (old, new) = (before.backend.edit, after.backend.edit);
    if old != new && after.precedes(new, old) {
        return violated(
            Property::NoCausalRegression,
            format!(
                "the backend went from {} back to {}, which causally precedes it",
                before.backend, after.backend
            ),
        );
    }
    for (i, (b, a)) in before.clients().iter().zip(after.clients()).enumerate() {
        if b.held.edit != a.held.edit && after.precedes(a.held.edit, b.held.edit) {
            return violated(
                Property::NoFlicker,
                format!(
                    "c{i} went from {} back to {}, which causally precedes it",
                    b.held, a.held
                ),
            );
        }
    }
    if after.backend.stamp < before.backend.stamp {
        return violated(
            Property::Monotonic,
            format!(
                "the stored stamp fell from {:?} to {:?}",
                before.backend.stamp, after.backend.stamp
            ),
        );
    }
    let Some(Message {
        kind: Kind::Request,
        held,
        ..
    }) = delivered
    else {
        return Ok(());
    };
    let mut first = before.backend;
    if rules.backend_receive(&mut first, held).is_none() {
        return violated(
            Property::NoRejection,
            format!("the backend rejected {held} over {}", before.backend),
        );
    }
    let mut replayed = after.backend;
    let again = rules.backend_receive(&mut replayed, held);
    if replayed != after.backend || again == Some(Decision::Applied) {
        return violated(
            Property::Monotonic,
            format!(
                "replaying {held} changed the backend from {} to {} ({again:?})",
                after.backend, replayed
            ),
        );
    }
    Ok(())
}
