//! The model's state: clients, one backend, the network, and the history
//! variables the properties need (each edit's causal past and stamp, and
//! which edits the backend acknowledged).
//!
//! Everything is fixed-size and `Copy`: the checker copies a state for every
//! transition, and a heap allocation each time would dominate its run time.

/// An edit's identity, in creation order. A value *is* the edit that made it.
pub type EditId = u8;
/// A set of edit ids, one bit each.
pub type Edits = u16;

pub const MAX_CLIENTS: usize = 5;
pub const MAX_EDITS: usize = 12;
pub const MAX_IN_FLIGHT: usize = 6;

pub fn bit(edit: EditId) -> Edits {
    1 << edit
}

/// A stamp as the model carries it. `writer` is a name for a writer
/// incarnation; only the order of names matters (see `canon`). The seed's
/// rules have no writers and leave it 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub clock: u8,
    pub writer: u8,
}

/// A value with a stamp: what a client shows, the backend stores, or a
/// message carries. `edit: None` is "no value yet" (and a read request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Held {
    pub edit: Option<EditId>,
    pub stamp: Stamp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Client {
    /// The value shown. Under the correct rules its stamp is the write's
    /// stamp; the seed's clients keep only a clock, so theirs stays default.
    pub held: Held,
    pub clock: u8,
    /// This incarnation's writer name.
    pub writer: u8,
    /// Every edit this incarnation has made or adopted, with their causal
    /// pasts: the causal past of its next edit. A reset forgets it.
    pub seen: Edits,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A client's state on its way to the backend.
    #[default]
    Request,
    /// The backend's state on its way back to a client.
    Response,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message {
    pub kind: Kind,
    /// The sender of a request, the addressee of a response.
    pub client: u8,
    pub held: Held,
}

/// What the model remembers about an edit, for the properties only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EditRecord {
    /// The edits its client had seen when it made it.
    pub past: Edits,
    /// The stamp its writer gave it.
    pub stamp: Stamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub clients_len: u8,
    pub clients: [Client; MAX_CLIENTS],
    pub backend: Held,
    /// In-flight messages: a *set*, kept sorted, unused slots default. A
    /// message stays in flight until it is delivered for the last time or
    /// lost, so it can be delivered any number of times (duplication) and
    /// in any order (reordering).
    pub in_flight: u8,
    pub network: [Message; MAX_IN_FLIGHT],
    pub made: u8,
    pub edits: [EditRecord; MAX_EDITS],
    pub resets: u8,
    /// Edits the backend answered APPLIED to.
    pub acknowledged: Edits,
    /// Acknowledged edits that no longer exist anywhere, summarized for P5:
    /// their largest stamp and the union of their causal pasts.
    pub dead_acknowledged: Option<Stamp>,
    pub dead_acknowledged_past: Edits,
}

impl State {
    /// `clients` clients with distinct writer names (spaced as `canon` spaces
    /// them, so the initial state is already canonical), nothing stored.
    pub fn initial(clients: usize, uses_writers: bool) -> State {
        assert!(clients <= MAX_CLIENTS, "at most {MAX_CLIENTS} clients");
        let mut state = State {
            clients_len: clients as u8,
            clients: [Client::default(); MAX_CLIENTS],
            backend: Held::default(),
            in_flight: 0,
            network: [Message::default(); MAX_IN_FLIGHT],
            made: 0,
            edits: [EditRecord::default(); MAX_EDITS],
            resets: 0,
            acknowledged: 0,
            dead_acknowledged: None,
            dead_acknowledged_past: 0,
        };
        if uses_writers {
            for (i, client) in state.clients[..clients].iter_mut().enumerate() {
                client.writer = crate::canon::writer_name(i as u8);
            }
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

    /// `a` causally precedes `b`: `a` is in the causal past of `b`.
    pub fn precedes(&self, a: Option<EditId>, b: Option<EditId>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => self.record(b).past & bit(a) != 0,
            _ => false,
        }
    }

    pub fn has_room(&self, capacity: usize) -> bool {
        (self.in_flight as usize) < capacity.min(MAX_IN_FLIGHT)
    }

    pub fn contains(&self, message: Message) -> bool {
        self.messages().binary_search(&message).is_ok()
    }

    /// Puts `message` in flight. A full network drops it: a bounded network
    /// that overflows loses messages, which the model allows anyway.
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

    /// Replaces the network with `messages` (any order), keeping the
    /// invariants: sorted, no duplicates, unused slots default.
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

    /// The largest clock anywhere in the state: the seed's rules let clocks
    /// grow without bound, so the checker cuts the space off at a ceiling.
    pub fn max_clock(&self) -> u8 {
        let clients = self
            .clients()
            .iter()
            .map(|c| c.clock.max(c.held.stamp.clock));
        let messages = self.messages().iter().map(|m| m.held.stamp.clock);
        clients
            .chain(messages)
            .chain([self.backend.stamp.clock])
            .max()
            .unwrap_or(0)
    }
}

/// Hashes the used parts of a state packed into words: one word a client, a
/// message or two edit records, rather than one hasher call a field (the
/// checker hashes every state it reaches; this is most of its time).
impl std::hash::Hash for State {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let held = |x: Held| {
            u64::from(x.edit.map_or(0, |e| u16::from(e) + 1))
                | u64::from(x.stamp.clock) << 16
                | u64::from(x.stamp.writer) << 24
        };
        h.write_u64(
            held(self.backend)
                | u64::from(self.clients_len) << 32
                | u64::from(self.in_flight) << 40
                | u64::from(self.made) << 48
                | u64::from(self.resets) << 56,
        );
        h.write_u64(
            u64::from(self.acknowledged)
                | u64::from(self.dead_acknowledged_past) << 16
                | self.dead_acknowledged.map_or(0, |s| {
                    1 << 32 | u64::from(s.clock) << 40 | u64::from(s.writer) << 48
                }),
        );
        for c in self.clients() {
            h.write_u64(
                held(c.held)
                    | u64::from(c.clock) << 32
                    | u64::from(c.writer) << 40
                    | u64::from(c.seen) << 48,
            );
        }
        for m in self.messages() {
            h.write_u64(held(m.held) | u64::from(m.client) << 32 | (m.kind as u64) << 40);
        }
        for pair in self.edits().chunks(2) {
            let record = |r: &EditRecord| {
                u64::from(r.past) | u64::from(r.stamp.clock) << 16 | u64::from(r.stamp.writer) << 24
            };
            h.write_u64(record(&pair[0]) | pair.get(1).map_or(0, record) << 32);
        }
    }
}

impl std::fmt::Display for Held {
    /// `e1@3` (seed rules: a clock) or `e1@3w0` (a clock and a writer, by
    /// its rank among writer ids); `-` for no value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.edit {
            None => f.write_str("-")?,
            Some(edit) => write!(f, "e{edit}")?,
        }
        if self.edit.is_some() || self.stamp.clock > 0 {
            write!(f, "@{}", self.stamp.clock)?;
        }
        if self.edit.is_some() && self.stamp.writer != 0 {
            write!(f, "w{}", self.stamp.writer / 4)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B={}", self.backend)?;
        for (i, c) in self.clients().iter().enumerate() {
            // The seed's clients keep a clock and no stamp: show the clock.
            let shown = if c.held.stamp == Stamp::default() {
                Held {
                    edit: c.held.edit,
                    stamp: Stamp {
                        clock: c.clock,
                        writer: 0,
                    },
                }
            } else {
                c.held
            };
            write!(f, " c{i}={shown}")?;
            if shown.stamp.clock != c.clock {
                write!(f, "/clock {}", c.clock)?;
            }
        }
        f.write_str(" net={")?;
        for (i, m) in self.messages().iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let (kind, arrow) = match m.kind {
                crate::state::Kind::Request => ("c", "->B"),
                crate::state::Kind::Response => ("B->c", ""),
            };
            write!(f, "{sep}{kind}{}{arrow} {}", m.client, m.held)?;
        }
        f.write_str("}")
    }
}
