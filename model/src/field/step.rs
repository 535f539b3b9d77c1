//! Actions and transitions of the per-field model: as the whole-document
//! model's, except that an edit is a patch of one or both fields and a sync
//! re-sends the client's unconfirmed edits (a read if none).

use std::fmt;

use settings_sync_protocol::Decision;

use super::real;
use super::rules::FieldRules;
use super::state::{Client, Doc, EditRecord, FIELDS, Message, Op, State};
use crate::state::{Kind, bit};
use crate::step::Limits;

/// The patches a client may make: set or delete either field (edits of
/// different fields, and of the same field), and set both under one stamp
/// (a patch that may apply in one field and be stale in the other).
pub const PATCHES: [[Op; FIELDS]; 5] = [
    [Op::Set, Op::Untouched],
    [Op::Untouched, Op::Set],
    [Op::Delete, Op::Untouched],
    [Op::Untouched, Op::Delete],
    [Op::Set, Op::Set],
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Edit {
        client: u8,
        ops: [Op; FIELDS],
        send: bool,
    },
    Sync {
        client: u8,
    },
    Reset {
        client: u8,
        writer: u8,
    },
    Deliver {
        message: Message,
        keep: bool,
    },
    Lose(Message),
}

pub fn actions(state: &State, limits: Limits, out: &mut Vec<Action>) {
    out.clear();
    let room = state.has_room(limits.in_flight);
    for (i, _) in state.clients().iter().enumerate() {
        let c = i as u8;
        if (state.made as usize) < limits.edits {
            for ops in PATCHES {
                out.push(Action::Edit {
                    client: c,
                    ops,
                    send: false,
                });
                if room {
                    out.push(Action::Edit {
                        client: c,
                        ops,
                        send: true,
                    });
                }
            }
        }
        if room && state.sync_requests(c).any(|m| !state.contains(m)) {
            out.push(Action::Sync { client: c });
        }
        if (state.resets as usize) < limits.resets {
            for writer in super::canon::fresh_writer_names(state, i) {
                out.push(Action::Reset { client: c, writer });
            }
        }
    }
    for &message in state.messages() {
        for keep in [false, true] {
            out.push(Action::Deliver { message, keep });
        }
        out.push(Action::Lose(message));
    }
}

pub fn step(state: &State, rules: FieldRules, limits: Limits, action: Action) -> State {
    let mut next = *state;
    match action {
        Action::Edit { client, ops, send } => {
            let id = next.made;
            let c = &mut next.clients[client as usize];
            let past = c.seen;
            let unstamped = EditRecord {
                past,
                stamp: Default::default(),
                ops,
            };
            let (clock, doc) = real::client_edit(c.writer, c.doc, c.clock, unstamped.patch(id));
            let stamp = doc
                .iter()
                .find(|e| e.edit == Some(id))
                .expect("an edit shows at once")
                .stamp;
            (c.clock, c.doc) = (clock, doc);
            c.seen |= bit(id);
            c.unconfirmed |= bit(id);
            next.edits[id as usize] = EditRecord { stamp, ..unstamped };
            next.made += 1;
            if send {
                let message = Message {
                    kind: Kind::Request,
                    client,
                    doc: next.record(id).patch(id),
                };
                next.send(message, limits.in_flight);
            }
        }
        Action::Sync { client } => {
            let requests: Vec<Message> = next.sync_requests(client).collect();
            for message in requests {
                next.send(message, limits.in_flight);
            }
        }
        Action::Reset { client, writer } => {
            next.resets += 1;
            next.clients[client as usize] = Client {
                writer,
                ..Client::default()
            };
        }
        Action::Deliver { message, keep } => {
            if !keep {
                next.remove(message);
            }
            match message.kind {
                Kind::Request => {
                    deliver_request(&mut next, rules, message.doc);
                    let response = Message {
                        kind: Kind::Response,
                        client: message.client,
                        doc: next.backend,
                    };
                    next.send(response, limits.in_flight);
                }
                Kind::Response => receive(&mut next, message.client, message.doc),
            }
        }
        Action::Lose(message) => next.remove(message),
    }
    next
}

/// The backend merges `patch`; every field it answers APPLIED for
/// acknowledges that edit for that field.
pub fn deliver_request(
    state: &mut State,
    rules: FieldRules,
    patch: Doc,
) -> Option<real::Decisions> {
    let decisions = rules.backend_receive(&mut state.backend, patch);
    for (f, decision) in decisions.into_iter().flatten().enumerate() {
        if let (Some(Decision::Applied), Some(edit)) = (decision, patch[f].edit) {
            state.acknowledged[f] |= bit(edit);
        }
    }
    decisions
}

/// Client `client` receives the backend's document: each field it adopts
/// makes that edit and its causal past seen; own edits the document shows
/// merged are confirmed.
pub fn receive(state: &mut State, client: u8, remote: Doc) {
    let c = state.clients[client as usize];
    let (clock, doc) = real::client_observe(c.writer, c.doc, c.clock, remote);
    let mut seen = c.seen;
    for (before, after) in c.doc.iter().zip(&doc) {
        if before != after
            && let Some(e) = after.edit
        {
            seen |= bit(e) | state.record(e).past;
        }
    }
    let mut unconfirmed = c.unconfirmed;
    for e in 0..state.made {
        if unconfirmed & bit(e) != 0 && real::is_confirmed(state.record(e).patch(e), remote) {
            unconfirmed &= !bit(e);
        }
    }
    state.clients[client as usize] = Client {
        doc,
        clock,
        seen,
        unconfirmed,
        ..c
    };
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Edit { client, ops, send } => {
                let what: Vec<String> = (ops.iter().enumerate())
                    .filter_map(|(i, op)| match op {
                        Op::Untouched => None,
                        Op::Set => Some(format!("sets f{i}")),
                        Op::Delete => Some(format!("deletes f{i}")),
                    })
                    .collect();
                let sent = if send { "and sends" } else { "(request lost)" };
                write!(f, "c{client} {} {sent}", what.join(", "))
            }
            Action::Sync { client } => write!(f, "c{client} syncs"),
            Action::Reset { client, .. } => write!(f, "c{client} resets"),
            Action::Deliver { message, keep } => {
                let again = if keep { " (a copy stays)" } else { "" };
                write!(f, "deliver {message}{again}")
            }
            Action::Lose(message) => write!(f, "lose {message}"),
        }
    }
}
