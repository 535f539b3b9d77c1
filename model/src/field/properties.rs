//! P1–P5 per field, and P6, on the per-field model's states and
//! transitions (`docs/model-check.md`). Causality is per edit, as in the
//! whole-document model: adopting a field of an edit makes that edit and
//! its causal past seen.

use std::cell::RefCell;

use settings_sync_protocol::Decision;

use super::rules::FieldRules;
use super::state::{Client, Doc, EditRecord, FIELDS, Op, State};
use super::step::{deliver_request, receive};
use crate::canon::FastMap;
use crate::properties::{Property, Violation, orders, violated};
use crate::state::{Kind, MAX_CLIENTS, MAX_EDITS, bit};

/// The properties of a state: P1, P5 and P6 per field.
pub fn check_state(state: &State, rules: FieldRules) -> Result<(), Violation> {
    convergence(state, rules)?;
    (0..FIELDS).try_for_each(|f| nothing_acknowledged_lost(state, f))
}

/// P1, per field: from `state`, two clean rounds (each client in turn sends
/// what a sync sends, the backend merges and answers the last, the client
/// receives it), in every order of the clients; then every client holds,
/// in every field, the backend's edit. Memoized on what the rounds read.
pub fn convergence(state: &State, rules: FieldRules) -> Result<(), Violation> {
    type Key = (
        FieldRules,
        Doc,
        [Client; MAX_CLIENTS],
        [EditRecord; MAX_EDITS],
    );
    thread_local!(static MEMO: RefCell<FastMap<Key, Option<usize>>> = RefCell::default());
    let mut clients = [Client::default(); MAX_CLIENTS];
    let mut records = [EditRecord::default(); MAX_EDITS];
    for (slot, c) in clients.iter_mut().zip(state.clients()) {
        // Causal knowledge does not take part in the rounds.
        *slot = Client { seen: 0, ..*c };
        for e in (0..state.made).filter(|&e| c.unconfirmed & bit(e) != 0) {
            records[e as usize] = EditRecord {
                past: 0,
                ..state.record(e)
            };
        }
    }
    let key: Key = (rules, state.backend, clients, records);
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
            super::state::DocView(&clean.backend),
            apart.join(", ")
        ),
    )
}

fn clean_rounds(state: &State, rules: FieldRules, order: &[u8]) -> (State, Vec<String>) {
    let mut clean = *state;
    clean.set_network(&mut []);
    for _ in 0..2 {
        for &client in order {
            let requests: Vec<_> = clean.sync_requests(client).collect();
            for request in requests {
                rules.backend_receive(&mut clean.backend, request.doc);
            }
            let answer = clean.backend;
            receive(&mut clean, client, answer);
        }
    }
    let stored = clean.backend.map(|e| e.edit);
    let apart = (clean.clients().iter().enumerate())
        .filter(|(_, c)| c.doc.map(|e| e.edit) != stored)
        .map(|(i, c)| format!("c{i} holds {}", super::state::DocView(&c.doc)))
        .collect();
    (clean, apart)
}

/// P5 and P6 for field `f`: every edit acknowledged for `f` is the edit `s`
/// stored in `f`, or `s` is a write of `f` (P6) with a larger stamp that is
/// not in its causal past (P5).
fn nothing_acknowledged_lost(state: &State, f: usize) -> Result<(), Violation> {
    let Some(stored) = state.backend[f].edit else {
        return match (state.acknowledged[f], state.dead_acknowledged[f]) {
            (0, None) => Ok(()),
            _ => violated(
                Property::NothingAcknowledgedLost,
                format!("the backend acknowledged an edit of f{f} but holds nothing there"),
            ),
        };
    };
    let record = state.record(stored);
    if record.ops[f] == Op::Untouched {
        return violated(
            Property::FieldIndependence,
            format!("f{f} holds e{stored}, which did not write f{f}"),
        );
    }
    if let Some(largest) = state.dead_acknowledged[f] {
        let follows = state.dead_acknowledged_past[f] & bit(stored) != 0;
        if record.stamp <= largest || follows {
            return violated(
                Property::NothingAcknowledgedLost,
                format!(
                    "an edit acknowledged for f{f}, now gone (largest stamp {largest:?}), was overwritten by e{stored} (stamp {:?}){}",
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
        if state.acknowledged[f] & bit(a) == 0 || a == stored {
            continue;
        }
        let larger = record.stamp > state.record(a).stamp;
        if !larger || state.precedes(Some(stored), Some(a)) {
            return violated(
                Property::NothingAcknowledgedLost,
                format!(
                    "e{a}, acknowledged for f{f} (stamp {:?}), was overwritten there by e{stored} (stamp {:?}){}",
                    state.record(a).stamp,
                    record.stamp,
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

/// The properties of a transition, per field: P2, P3, P4, P6's decisions,
/// and no rejection. `after` is not yet canonical.
pub fn check_transition(
    before: &State,
    after: &State,
    rules: FieldRules,
    delivered: Option<super::state::Message>,
) -> Result<(), Violation> {
    for f in 0..FIELDS {
        let (old, new) = (before.backend[f], after.backend[f]);
        if old.edit != new.edit && after.precedes(new.edit, old.edit) {
            return violated(
                Property::NoCausalRegression,
                format!(
                    "the backend's f{f} went from {old} back to {new}, which causally precedes it"
                ),
            );
        }
        for (i, (b, a)) in before.clients().iter().zip(after.clients()).enumerate() {
            let (old, new) = (b.doc[f], a.doc[f]);
            if old.edit != new.edit && after.precedes(new.edit, old.edit) {
                return violated(
                    Property::NoFlicker,
                    format!(
                        "c{i}'s f{f} went from {old} back to {new}, which causally precedes it"
                    ),
                );
            }
        }
        if new.stamp < old.stamp {
            return violated(
                Property::Monotonic,
                format!(
                    "the stored stamp of f{f} fell from {:?} to {:?}",
                    old.stamp, new.stamp
                ),
            );
        }
    }
    let Some(message) = delivered.filter(|m| m.kind == Kind::Request) else {
        return Ok(());
    };
    let patch = message.doc;
    let mut first = *before;
    let Some(decisions) = deliver_request(&mut first, rules, patch) else {
        return violated(
            Property::NoRejection,
            format!(
                "the backend refused {} over {}",
                super::state::DocView(&patch),
                super::state::DocView(&before.backend)
            ),
        );
    };
    for (f, decision) in decisions.iter().enumerate() {
        let (stored, written) = (before.backend[f], patch[f]);
        let truthful = match decision {
            None => true,
            Some(Decision::Applied) => first.backend[f] == written,
            Some(Decision::Unchanged) => stored == written,
            Some(Decision::Stale) => stored.edit.is_some() && stored.stamp > written.stamp,
        };
        if !truthful {
            return violated(
                Property::FieldIndependence,
                format!(
                    "{written} was answered {} for f{f}, which held {stored}",
                    decision.map_or("nothing", Decision::as_str)
                ),
            );
        }
    }
    let mut replayed = after.backend;
    let again = rules.backend_receive(&mut replayed, patch);
    let applied_again = again.is_some_and(|d| d.contains(&Some(Decision::Applied)));
    if replayed != after.backend || applied_again {
        return violated(
            Property::Monotonic,
            format!(
                "replaying {} changed the backend from {} to {} ({again:?})",
                super::state::DocView(&patch),
                super::state::DocView(&after.backend),
                super::state::DocView(&replayed)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::state::{Message, Op};
    use crate::field::step::{Action, step};
    use crate::step::Limits;

    const LIMITS: Limits = Limits {
        edits: 2,
        resets: 0,
        in_flight: 2,
    };

    /// c0 sets f0 and c1 sets f1, concurrently; c1's request arrives first.
    /// Returns the state and c0's request, still in flight.
    fn concurrent_edits_of_two_fields(rules: FieldRules) -> (State, Message) {
        let mut state = State::initial(2);
        for (client, ops) in [(0, [Op::Set, Op::Untouched]), (1, [Op::Untouched, Op::Set])] {
            let edit = Action::Edit {
                client,
                ops,
                send: true,
            };
            state = step(&state, rules, LIMITS, edit);
        }
        let of = |client| {
            *state
                .messages()
                .iter()
                .find(|m| m.client == client)
                .unwrap()
        };
        let (first, second) = (of(1), of(0));
        let deliver = Action::Deliver {
            message: first,
            keep: false,
        };
        (step(&state, rules, LIMITS, deliver), second)
    }

    fn deliver(rules: FieldRules) -> Result<(), Violation> {
        let (before, message) = concurrent_edits_of_two_fields(rules);
        let deliver = Action::Deliver {
            message,
            keep: false,
        };
        let after = step(&before, rules, LIMITS, deliver);
        check_transition(&before, &after, rules, Some(message))?;
        check_state(&after, rules)
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        assert_eq!(deliver(FieldRules::Correct), Ok(()));
    }

    #[test]
    fn p6_alone_catches_a_decision_against_the_document_stamp() {
        let violation = deliver(FieldRules::DocumentStamp).unwrap_err();
        assert_eq!(
            violation.property,
            Property::FieldIndependence,
            "{}",
            violation.detail
        );
        assert!(
            violation.detail.contains("answered STALE for f0"),
            "{}",
            violation.detail
        );
    }

    #[test]
    fn a_forgotten_tombstone_is_caught_when_applied_and_when_an_older_write_returns() {
        // c0 sets f0 (the request is held back), then deletes it; the delete
        // arrives first, then the older set. (P1 fails too: c0 keeps the
        // tombstone the backend forgot; here P6 and P5 alone.)
        let rules = FieldRules::ForgetTombstones;
        let mut state = State::initial(1);
        for ops in [[Op::Set, Op::Untouched], [Op::Delete, Op::Untouched]] {
            let edit = Action::Edit {
                client: 0,
                ops,
                send: true,
            };
            state = step(&state, rules, LIMITS, edit);
        }
        let request = |state: &State, edit| {
            *state
                .messages()
                .iter()
                .find(|m| m.doc[0].edit == Some(edit))
                .unwrap()
        };
        let mut found = Vec::new();
        for edit in [1, 0] {
            let message = request(&state, edit);
            let before = state;
            state = step(
                &before,
                rules,
                LIMITS,
                Action::Deliver {
                    message,
                    keep: false,
                },
            );
            found.extend(check_transition(&before, &state, rules, Some(message)).err());
            found.extend(nothing_acknowledged_lost(&state, 0).err());
        }
        let found: Vec<_> = found
            .iter()
            .map(|v| (v.property, v.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    Property::FieldIndependence,
                    "~e1@2w0 was answered APPLIED for f0, which held -"
                ),
                (
                    Property::NothingAcknowledgedLost,
                    "the backend acknowledged an edit of f0 but holds nothing there"
                ),
                (
                    Property::NothingAcknowledgedLost,
                    "e1, acknowledged for f0 (stamp Stamp { clock: 2, writer: 2 }), was overwritten there by e0 (stamp Stamp { clock: 1, writer: 2 })"
                ),
            ]
        );
    }
}
