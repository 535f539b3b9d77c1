//! The per-field model's state: as the whole-document model's, with a
//! document of [`FIELDS`] registers wherever that one has a single value,
//! requests carrying a patch, each client's unconfirmed writes, and the
//! acknowledgements kept per field.

use crate::state::{EditId, Edits, Kind, MAX_CLIENTS, MAX_EDITS, MAX_IN_FLIGHT, Stamp};

pub const FIELDS: usize = 2;

/// One field's register: the edit that last set or deleted it (`None`:
/// never written), that edit's stamp, and whether it deleted the field (a
/// field tombstone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub edit: Option<EditId>,
    pub stamp: Stamp,
    pub deleted: bool,
}

/// A document, or in a request the patch it carries: the fields the patch
/// leaves alone are `Entry::default()`, the others all carry its stamp.
pub type Doc = [Entry; FIELDS];

/// What an edit does to one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    #[default]
    Untouched,
    Set,
    Delete,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Client {
    pub doc: Doc,
    pub clock: u8,
    pub writer: u8,
    /// Every edit this incarnation made or adopted (a field of), with their
    /// causal pasts. A reset forgets it.
    pub seen: Edits,
    /// Own edits not yet seen merged at the backend: what a sync re-sends.
    pub unconfirmed: Edits,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message {
    pub kind: Kind,
    /// The sender of a request, the addressee of a response.
    pub client: u8,
    /// A request's patch (all untouched: a read), a response's document.
    pub doc: Doc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EditRecord {
    pub past: Edits,
    pub stamp: Stamp,
    pub ops: [Op; FIELDS],
}

impl EditRecord {
    /// The request that carries this edit (`edit` its id).
    pub fn patch(&self, edit: EditId) -> Doc {
        self.ops.map(|op| match op {
            Op::Untouched => Entry::default(),
            op => Entry {
                edit: Some(edit),
                stamp: self.stamp,
                deleted: op == Op::Delete,
            },
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub clients_len: u8,
    pub clients: [Client; MAX_CLIENTS],
    pub backend: Doc,
    /// In-flight messages: a sorted set, as in the whole-document model.
    pub in_flight: u8,
    pub network: [Message; MAX_IN_FLIGHT],
    pub made: u8,
    pub edits: [EditRecord; MAX_EDITS],
    pub resets: u8,
    /// Per field, the edits the backend answered APPLIED to for it.
    pub acknowledged: [Edits; FIELDS],
    /// Per field, acknowledged edits that exist nowhere any more, summarized
    /// for P5 as in the whole-document model.
    pub dead_acknowledged: [Option<Stamp>; FIELDS],
    pub dead_acknowledged_past: [Edits; FIELDS],
}

impl State {
    pub fn initial(clients: usize) -> State {
        assert!(clients <= MAX_CLIENTS, "at most {MAX_CLIENTS} clients");
        let mut state = State {
            clients_len: clients as u8,
            clients: [Client::default(); MAX_CLIENTS],
            backend: Doc::default(),
            in_flight: 0,
            network: [Message::default(); MAX_IN_FLIGHT],
            made: 0,
            edits: [EditRecord::default(); MAX_EDITS],
            resets: 0,
            acknowledged: [0; FIELDS],
            dead_acknowledged: [None; FIELDS],
            dead_acknowledged_past: [0; FIELDS],
        };
        for (i, client) in state.clients[..clients].iter_mut().enumerate() {
            client.writer = crate::canon::writer_name(i as u8);
        }
        state
    }

    pub fn clients(&self) -> &[Client] {
        &self.clients[..self.clients_len as usize]
    }

    pub fn messages(&self) -> &[Message] {
        &self.network[..self.in_flight as usize]
    }

    pub fn edits(&self) -> &[EditRecord] {
        &self.edits[..self.made as usize]
    }

    pub fn record(&self, edit: EditId) -> EditRecord {
        self.edits[edit as usize]
    }

    /// `a` causally precedes `b`.
    pub fn precedes(&self, a: Option<EditId>, b: Option<EditId>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => self.record(b).past & crate::state::bit(a) != 0,
            _ => false,
        }
    }

    /// The requests a sync of `client` sends: its unconfirmed edits, each
    /// under its own stamp, or a read if there are none.
    pub fn sync_requests(&self, client: u8) -> impl Iterator<Item = Message> + '_ {
        let unconfirmed = self.clients[client as usize].unconfirmed;
        let request = move |doc| Message {
            kind: Kind::Request,
            client,
            doc,
        };
        let writes = (0..self.made)
            .filter(move |&e| unconfirmed & crate::state::bit(e) != 0)
            .map(move |e| request(self.record(e).patch(e)));
        let read = (unconfirmed == 0).then(|| request(Doc::default()));
        writes.chain(read)
    }

    pub fn has_room(&self, capacity: usize) -> bool {
        (self.in_flight as usize) < capacity.min(MAX_IN_FLIGHT)
    }

    pub fn contains(&self, message: Message) -> bool {
        self.messages().binary_search(&message).is_ok()
    }

    /// Puts `message` in flight; a full network loses it.
    pub fn send(&mut self, message: Message, capacity: usize) {
        let Err(at) = self.messages().binary_search(&message) else {
            return;
        };
        if !self.has_room(capacity) {
            return;
        }
        let len = self.in_flight as usize;
        self.network.copy_within(at..len, at + 1);
        self.network[at] = message;
        self.in_flight += 1;
    }

    pub fn remove(&mut self, message: Message) {
        if let Ok(at) = self.messages().binary_search(&message) {
            let len = self.in_flight as usize;
            self.network.copy_within(at + 1..len, at);
            self.network[len - 1] = Message::default();
            self.in_flight -= 1;
        }
    }

    /// Replaces the network with `messages` (any order): sorted, no
    /// duplicates, unused slots default.
    pub fn set_network(&mut self, messages: &mut [Message]) {
        messages.sort_unstable();
        self.network = [Message::default(); MAX_IN_FLIGHT];
        self.in_flight = 0;
        for (i, m) in messages.iter().enumerate() {
            if i == 0 || messages[i - 1] != *m {
                self.network[self.in_flight as usize] = *m;
                self.in_flight += 1;
            }
        }
    }

    pub fn max_clock(&self) -> u8 {
        let doc = |d: &Doc| d.iter().map(|e| e.stamp.clock).max().unwrap_or(0);
        let clients = self.clients().iter().map(|c| c.clock.max(doc(&c.doc)));
        let messages = self.messages().iter().map(|m| doc(&m.doc));
        clients
            .chain(messages)
            .chain([doc(&self.backend)])
            .max()
            .unwrap_or(0)
    }
}

fn entry_word(e: Entry) -> u64 {
    u64::from(e.edit.map_or(0, |x| u16::from(x) + 1))
        | u64::from(e.stamp.clock) << 8
        | u64::from(e.stamp.writer) << 16
        | u64::from(e.deleted) << 24
}

fn doc_word(d: &Doc) -> u64 {
    entry_word(d[0]) | entry_word(d[1]) << 32
}

/// Hashes the used parts packed into words, as the whole-document state does.
impl std::hash::Hash for State {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(doc_word(&self.backend));
        h.write_u64(
            u64::from(self.clients_len)
                | u64::from(self.in_flight) << 8
                | u64::from(self.made) << 16
                | u64::from(self.resets) << 24
                | u64::from(self.acknowledged[0]) << 32
                | u64::from(self.acknowledged[1]) << 48,
        );
        let dead = |s: Option<Stamp>| {
            s.map_or(0, |s| {
                1 << 16 | u64::from(s.clock) << 8 | u64::from(s.writer)
            })
        };
        h.write_u64(
            dead(self.dead_acknowledged[0])
                | dead(self.dead_acknowledged[1]) << 17
                | u64::from(self.dead_acknowledged_past[0]) << 34,
        );
        h.write_u64(u64::from(self.dead_acknowledged_past[1]));
        for c in self.clients() {
            h.write_u64(doc_word(&c.doc));
            h.write_u64(
                u64::from(c.clock)
                    | u64::from(c.writer) << 8
                    | u64::from(c.seen) << 16
                    | u64::from(c.unconfirmed) << 32,
            );
        }
        for m in self.messages() {
            h.write_u64(doc_word(&m.doc));
            h.write_u64(u64::from(m.client) | (m.kind as u64) << 8);
        }
        for r in self.edits() {
            let ops = r.ops.iter().fold(0u64, |acc, &op| acc << 2 | op as u64);
            h.write_u64(
                u64::from(r.past)
                    | u64::from(r.stamp.clock) << 16
                    | u64::from(r.stamp.writer) << 24
                    | ops << 32,
            );
        }
    }
}

impl std::fmt::Display for Entry {
    /// `e1@3w0` set by edit 1 (clock 3, the 0-th writer in order),
    /// `~e1@3w0` deleted by it, `-` never written (in a request: untouched).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(edit) = self.edit else {
            return f.write_str("-");
        };
        let tilde = if self.deleted { "~" } else { "" };
        let (clock, writer) = (self.stamp.clock, self.stamp.writer / 4);
        write!(f, "{tilde}e{edit}@{clock}w{writer}")
    }
}

pub struct DocView<'a>(pub &'a Doc);

impl std::fmt::Display for DocView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({} {})", self.0[0], self.0[1])
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Request => write!(f, "c{}->B {}", self.client, DocView(&self.doc)),
            Kind::Response => write!(f, "B->c{} {}", self.client, DocView(&self.doc)),
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B={}", DocView(&self.backend))?;
        for (i, c) in self.clients().iter().enumerate() {
            write!(f, " c{i}={}", DocView(&c.doc))?;
        }
        f.write_str(" net={")?;
        for (i, m) in self.messages().iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{m}")?;
        }
        f.write_str("}")
    }
}
