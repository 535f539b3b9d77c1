//! Actions and transitions.
//!
//! Clients edit (and send, or not: the request is lost before it leaves),
//! sync (send their current state) and reset (a new incarnation: fresh
//! writer, no value, clock 0, no causal knowledge). The network delivers any
//! in-flight message, in any order, as often as it likes, or loses it. The
//! backend answers every request it receives with its state.

use std::fmt;

use settings_sync_protocol::Decision;

use crate::canon;
use crate::rules::Rules;
use crate::state::{Client, EditRecord, Kind, Message, State, bit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Edit {
        client: u8,
        send: bool,
    },
    Sync {
        client: u8,
    },
    /// `writer` is the new incarnation's name, i.e. its place in the order
    /// of writer ids.
    Reset {
        client: u8,
        writer: u8,
    },
    /// `keep`: the network delivers a copy and keeps the message in flight,
    /// to deliver again later (duplication).
    Deliver {
        message: Message,
        keep: bool,
    },
    Lose(Message),
}

/// How far the search goes: the model's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub edits: usize,
    pub resets: usize,
    pub in_flight: usize,
}

/// The actions enabled in `state`.
pub fn actions(state: &State, rules: Rules, limits: Limits, out: &mut Vec<Action>) {
    out.clear();
    let room = state.has_room(limits.in_flight);
    for (i, client) in state.clients().iter().enumerate() {
        let c = i as u8;
        if (state.made as usize) < limits.edits {
            out.push(Action::Edit {
                client: c,
                send: false,
            });
            if room {
                out.push(Action::Edit {
                    client: c,
                    send: true,
                });
            }
        }
        if room && !state.contains(request(c, rules, client)) {
            out.push(Action::Sync { client: c });
        }
        if (state.resets as usize) < limits.resets {
            if rules.uses_writers() {
                for writer in canon::fresh_writer_names(state, i) {
                    out.push(Action::Reset { client: c, writer });
                }
            } else {
                out.push(Action::Reset {
                    client: c,
                    writer: 0,
                });
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

fn request(client: u8, rules: Rules, state: &Client) -> Message {
    Message {
        kind: Kind::Request,
        client,
        held: rules.outgoing(state),
    }
}

/// The state after `action`, not yet canonical (so client indices still
/// match `state`'s, which the transition properties rely on).
pub fn step(state: &State, rules: Rules, limits: Limits, action: Action) -> State {
    let mut next = *state;
    match action {
        Action::Edit { client, send } => {
            let id = next.made;
            let c = &mut next.clients[client as usize];
            let past = c.seen;
            let stamp = rules.edit(c, id);
            c.seen |= bit(id);
            next.edits[id as usize] = EditRecord { past, stamp };
            next.made += 1;
            if send {
                let message = request(client, rules, &next.clients[client as usize]);
                next.send(message, limits.in_flight);
            }
        }
        Action::Sync { client } => {
            let message = request(client, rules, &next.clients[client as usize]);
            next.send(message, limits.in_flight);
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
                    let decision = rules.backend_receive(&mut next.backend, message.held);
                    if let (Some(Decision::Applied), Some(edit)) = (decision, message.held.edit) {
                        next.acknowledged |= bit(edit);
                    }
                    let response = Message {
                        kind: Kind::Response,
                        client: message.client,
                        held: next.backend,
                    };
                    next.send(response, limits.in_flight);
                }
                Kind::Response => receive(&mut next, rules, message.client, message),
            }
        }
        Action::Lose(message) => next.remove(message),
    }
    next
}

/// Client `client` receives the backend's state; if it adopts it, it has
/// now seen that edit and its causal past.
pub fn receive(state: &mut State, rules: Rules, client: u8, response: Message) {
    let past = response
        .held
        .edit
        .map_or(0, |e| bit(e) | state.record(e).past);
    let c = &mut state.clients[client as usize];
    if rules.client_receive(c, response.held) {
        c.seen |= past;
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Edit { client, send: true } => write!(f, "c{client} edits and sends"),
            Action::Edit {
                client,
                send: false,
            } => write!(f, "c{client} edits (request lost)"),
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

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Request => write!(f, "c{}->B {}", self.client, self.held),
            Kind::Response => write!(f, "B->c{} {}", self.client, self.held),
        }
    }
}
