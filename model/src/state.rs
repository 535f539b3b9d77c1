//! The model's state and its transitions.

use crate::rules::{EditId, Held, ModelStamp, Rules};

/// A set of edit ids (at most 16 edits in a model).
pub type Edits = u16;

pub fn bit(edit: EditId) -> Edits {
    1 << edit
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    pub held: Held,
    pub clock: u64,
    pub incarnation: u8,
    /// Every edit this incarnation has seen (made or adopted) and their
    /// causal pasts: the causal past of its next edit.
    pub seen: Edits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message {
    /// A client's state (or, with no value, a read) on its way to the backend.
    Request { from: u8, held: Held },
    /// The backend's state on its way back.
    Response { to: u8, held: Held },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub clients: Vec<Client>,
    pub backend: Held,
    /// In-flight messages, kept sorted: the network is a multiset.
    pub network: Vec<Message>,
    /// Causal past and original stamp of every edit made so far.
    pub edits: Vec<(Edits, ModelStamp)>,
    pub resets: u8,
    /// Edits the backend applied (acknowledged as APPLIED).
    pub acknowledged: Edits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Edit { client: u8, send: bool },
    Sync { client: u8 },
    Reset { client: u8 },
    Deliver(Message),
    Lose(Message),
    Duplicate(Message),
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub edits: usize,
    pub resets: u8,
    pub in_flight: usize,
}

impl State {
    pub fn initial(clients: usize) -> State {
        let client = Client {
            held: Held::default(),
            clock: 0,
            incarnation: 0,
            seen: 0,
        };
        State {
            clients: vec![client; clients],
            backend: Held::default(),
            network: Vec::new(),
            edits: Vec::new(),
            resets: 0,
            acknowledged: 0,
        }
    }

    pub fn writer(&self, client: u8) -> u8 {
        client * 8 + self.clients[client as usize].incarnation
    }

    /// The actions enabled in this state.
    pub fn actions(&self, limits: Limits) -> Vec<Action> {
        let mut actions = Vec::new();
        let room = self.network.len() < limits.in_flight;
        for client in 0..self.clients.len() as u8 {
            if self.edits.len() < limits.edits {
                actions.push(Action::Edit {
                    client,
                    send: false,
                });
                if room {
                    actions.push(Action::Edit { client, send: true });
                }
            }
            if room {
                actions.push(Action::Sync { client });
            }
            if self.resets < limits.resets {
                actions.push(Action::Reset { client });
            }
        }
        let mut distinct = self.network.clone();
        distinct.dedup();
        for message in distinct {
            actions.push(Action::Deliver(message));
            actions.push(Action::Lose(message));
            if room {
                actions.push(Action::Duplicate(message));
            }
        }
        actions
    }

    fn send(&mut self, message: Message) {
        let at = self.network.binary_search(&message).unwrap_or_else(|i| i);
        self.network.insert(at, message);
    }

    fn take(&mut self, message: Message) {
        if let Ok(at) = self.network.binary_search(&message) {
            self.network.remove(at);
        }
    }

    /// A client adopts the backend's state by the rules; its causal
    /// knowledge grows by what it adopted.
    pub fn client_receive(&mut self, rules: Rules, client: u8, remote: Held) {
        let past = remote.edit.map_or(0, |e| bit(e) | self.edits[e as usize].0);
        let c = &mut self.clients[client as usize];
        if rules.client_receive(&mut c.held, &mut c.clock, remote) {
            c.seen |= past;
        }
    }

    /// The backend merges a client's state; returns whether it applied it.
    pub fn backend_receive(&mut self, rules: Rules, incoming: Held) -> bool {
        let applied = rules.backend_receive(&mut self.backend, incoming);
        if applied && let Some(edit) = incoming.edit {
            self.acknowledged |= bit(edit);
        }
        applied
    }

    pub fn step(&self, rules: Rules, action: Action) -> State {
        let mut next = self.clone();
        match action {
            Action::Edit { client, send } => {
                let edit = next.edits.len() as EditId;
                let writer = next.writer(client);
                let c = &mut next.clients[client as usize];
                let stamp = rules.edit_stamp(&mut c.clock, writer);
                next.edits.push((c.seen, stamp));
                c.held = Held {
                    edit: Some(edit),
                    stamp,
                };
                c.seen |= bit(edit);
                let held = c.held;
                if send {
                    next.send(Message::Request { from: client, held });
                }
            }
            Action::Sync { client } => {
                let held = next.clients[client as usize].held;
                next.send(Message::Request { from: client, held });
            }
            Action::Reset { client } => {
                next.resets += 1;
                let c = &mut next.clients[client as usize];
                *c = Client {
                    held: Held::default(),
                    clock: 0,
                    incarnation: c.incarnation + 1,
                    seen: 0,
                };
            }
            Action::Deliver(message) => {
                next.take(message);
                match message {
                    Message::Request { from, held } => {
                        next.backend_receive(rules, held);
                        next.send(Message::Response {
                            to: from,
                            held: next.backend,
                        });
                    }
                    Message::Response { to, held } => next.client_receive(rules, to, held),
                }
            }
            Action::Lose(message) => next.take(message),
            Action::Duplicate(message) => next.send(message),
        }
        next
    }
}
