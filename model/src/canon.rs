//! State canonicalization: two reductions that keep the search exhaustive
//! while visiting each class of equivalent states once.
//!
//! 1. **Client symmetry.** Clients are interchangeable: nothing in the rules
//!    or properties depends on a client's index, only on its content (its
//!    writer name included). Clients are sorted by their content and the
//!    messages they sent or are owed; messages are relabelled to match.
//!    Clients with equal keys are identical in every respect, so the order
//!    among them does not matter and the form is canonical.
//! 2. **Writer names.** Real writer ids are random, so only their *order*
//!    can influence the protocol (it compares ids, nothing else). Names are
//!    renumbered densely in order, spaced four apart (`2, 6, 10, ...`), which
//!    leaves free names before, between and after them: a reset picks one of
//!    those places, i.e. its fresh random id may land anywhere in the order.

use crate::state::{
    EditRecord, Edits, Held, Kind, MAX_CLIENTS, MAX_IN_FLIGHT, Message, State, bit,
};

/// The canonical name of the `rank`-th writer in order.
pub fn writer_name(rank: u8) -> u8 {
    4 * rank + 2
}

/// The free names for a new incarnation of client `client` in a canonical
/// state, one for each place in the order of the other names in use: just
/// before each, and after the last.
pub fn fresh_writer_names(state: &State, client: usize) -> Vec<u8> {
    fresh_names(writers(state, Some(client)))
}

/// One free name for each place in the order of `used` (canonical names):
/// just before each, and after the last.
pub fn fresh_names(used: Names) -> Vec<u8> {
    let mut names: Vec<u8> = used.iter().map(|n| n - 1).collect();
    names.push(names.last().map_or(1, |before_last| before_last + 2));
    names
}

/// A set of writer names.
#[derive(Clone, Copy, Default)]
pub struct Names([u64; 4]);

impl Names {
    pub fn insert(&mut self, name: u8) {
        self.0[name as usize / 64] |= 1 << (name % 64);
    }

    /// The names in increasing order.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..4usize).flat_map(move |w| {
            let mut bits = self.0[w];
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let at = bits.trailing_zeros();
                    bits &= bits - 1;
                    (w * 64) as u8 + at as u8
                })
            })
        })
    }
}

/// Every writer name in use: the clients' own (but `except`'s), and those
/// in stamps.
pub fn writers(state: &State, except: Option<usize>) -> Names {
    let mut used = Names::default();
    for (i, client) in state.clients().iter().enumerate() {
        if Some(i) != except {
            used.insert(client.writer);
        }
    }
    let mut stamp = |held: &Held| {
        if held.edit.is_some() {
            used.insert(held.stamp.writer);
        }
    };
    state.clients().iter().for_each(|c| stamp(&c.held));
    state.messages().iter().for_each(|m| stamp(&m.held));
    stamp(&state.backend);
    // Forgotten edits' records are blank (clock 0): no writer.
    for edit in state.edits().iter().filter(|e| e.stamp.clock > 0) {
        used.insert(edit.stamp.writer);
    }
    if let Some(stamp) = state.dead_acknowledged {
        used.insert(stamp.writer);
    }
    used
}

pub fn canonicalize(state: &mut State, uses_writers: bool) {
    collect_dead_edits(state);
    if uses_writers {
        rename_writers(state);
    }
    sort_clients(state);
}

/// Forgets edits that exist nowhere any more (no client shows one, the
/// backend does not store it, no message carries it): no action can bring
/// one back, so the only things that depend on it are the causal pasts that
/// mention it and P5, if it was acknowledged. A dead edit is never the *new*
/// value of a transition, so P2 and P3 never ask whether it precedes
/// anything: its bit is cleared from every past. P5 needs, over all dead
/// acknowledged edits `a`, "stored stamp > stamp(a) and stored not in
/// past(a)", which is exactly "stored stamp > the largest of their stamps and
/// stored not in the union of their pasts": that summary is kept instead.
/// States that differ only in forgotten history become one state.
pub fn collect_dead_edits(state: &mut State) {
    let mut live: u32 = 0;
    let mut mark = |held: &Held| {
        if let Some(edit) = held.edit {
            live |= 1 << edit;
        }
    };
    state.clients().iter().for_each(|c| mark(&c.held));
    state.messages().iter().for_each(|m| mark(&m.held));
    mark(&state.backend);
    let dead = (((1u32 << state.made) - 1) & !live) as Edits;
    if dead == 0 {
        return;
    }
    for edit in 0..state.made {
        if state.acknowledged & dead & bit(edit) != 0 {
            let record = state.record(edit);
            state.dead_acknowledged = state.dead_acknowledged.max(Some(record.stamp));
            state.dead_acknowledged_past |= record.past;
        }
        if dead & bit(edit) != 0 {
            state.edits[edit as usize] = EditRecord::default();
        }
    }
    state.acknowledged &= !dead;
    state.dead_acknowledged_past &= !dead;
    let n = state.clients_len as usize;
    for client in &mut state.clients[..n] {
        client.seen &= !dead;
    }
    for record in &mut state.edits[..state.made as usize] {
        record.past &= !dead;
    }
}

/// Renames writers densely in order, leaving client indices alone.
pub fn rename_writers(state: &mut State) {
    let used = writers(state, None);
    if used
        .iter()
        .zip(0..)
        .all(|(name, rank)| name == writer_name(rank))
    {
        return; // already dense: the common case
    }
    let mut rename = [0u8; 256];
    for (name, rank) in used.iter().zip(0..) {
        rename[name as usize] = writer_name(rank);
    }
    let n = state.clients_len as usize;
    let held = |h: &mut Held| {
        if h.edit.is_some() {
            h.stamp.writer = rename[h.stamp.writer as usize];
        }
    };
    for client in &mut state.clients[..n] {
        client.writer = rename[client.writer as usize];
        held(&mut client.held);
    }
    for message in &mut state.network[..state.in_flight as usize] {
        held(&mut message.held);
    }
    held(&mut state.backend);
    for edit in &mut state.edits[..state.made as usize] {
        if edit.stamp.clock > 0 {
            edit.stamp.writer = rename[edit.stamp.writer as usize];
        }
    }
    if let Some(stamp) = &mut state.dead_acknowledged {
        stamp.writer = rename[stamp.writer as usize];
    }
    // Renaming preserves order, so the network stays sorted.
}

fn sort_clients(state: &mut State) {
    let n = state.clients_len as usize;
    // A client's key: its content, then the sorted messages it is party to.
    let mut keys = [([(Kind::Request, Held::default()); MAX_IN_FLIGHT], 0usize); MAX_CLIENTS];
    for message in state.messages() {
        let (list, len) = &mut keys[message.client as usize];
        list[*len] = (message.kind, message.held);
        *len += 1;
    }
    for (list, len) in &mut keys[..n] {
        list[..*len].sort_unstable();
    }
    let mut order: [usize; MAX_CLIENTS] = std::array::from_fn(|i| i);
    order[..n].sort_unstable_by(|&a, &b| {
        let key = |i: usize| (&state.clients[i], &keys[i].0[..keys[i].1]);
        key(a).cmp(&key(b))
    });
    if order[..n].iter().enumerate().all(|(i, &o)| i == o) {
        return;
    }
    let mut new_index = [0u8; MAX_CLIENTS];
    for (new, &old) in order[..n].iter().enumerate() {
        new_index[old] = new as u8;
    }
    let clients = state.clients;
    for (new, &old) in order[..n].iter().enumerate() {
        state.clients[new] = clients[old];
    }
    let mut messages = [Message::default(); MAX_IN_FLIGHT];
    let len = state.in_flight as usize;
    for (slot, message) in messages.iter_mut().zip(state.messages()) {
        *slot = Message {
            client: new_index[message.client as usize],
            ..*message
        };
    }
    state.set_network(&mut messages[..len]);
}

/// A hash map keyed by small `Copy` values, hashed with [`Fingerprinter`].
pub type FastMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Fingerprinter>>;

/// A 128-bit fingerprint of a (canonical) state. Visited states are kept as
/// fingerprints only, as TLC does: a collision would hide a state, and with
/// two independent 64-bit lanes its odds over even 10^9 states are below
/// 10^-20 for a well-mixed hash. (SipHash, std's, is well mixed but costs
/// more than the rest of a transition; this mixer does one multiply a word.)
pub fn fingerprint<S: std::hash::Hash>(state: &S) -> u128 {
    let mut h = Fingerprinter::default();
    state.hash(&mut h);
    let (a, b) = (mix(h.a ^ h.len), mix(h.b ^ h.len.rotate_left(32)));
    (u128::from(a) << 64) | u128::from(b)
}

/// Also the hasher of the checker's memo tables: fast, and well mixed.
#[derive(Clone)]
pub struct Fingerprinter {
    a: u64,
    b: u64,
    len: u64,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            a: 0x243f_6a88_85a3_08d3,
            b: 0x1319_8a2e_0370_7344,
            len: 0,
        }
    }
}

impl std::hash::Hasher for Fingerprinter {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.len += 1;
        // Each step is a bijection of the lane for a given word, and the
        // lanes use unrelated constants and rotations.
        self.a = (self.a ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(23);
        self.b = (self.b.rotate_left(41) ^ n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
            .wrapping_mul(0x1656_67b1_9e37_79f9);
    }
    fn finish(&self) -> u64 {
        mix(self.a ^ self.b)
    }
}

/// splitmix64's finalizer: every input bit flips each output bit with
/// probability close to one half.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;
    use crate::state::{Kind, Message};

    #[test]
    fn permuted_clients_and_renamed_writers_have_one_canonical_form() {
        let mut a = State::initial(3, true);
        Rules::Correct.edit(&mut a.clients[0], 0);
        a.made = 1;
        a.edits[0].stamp = a.clients[0].held.stamp;
        let request = |client| Message {
            kind: Kind::Request,
            client,
            held: Held::default(),
        };
        a.send(request(0), 6);
        a.send(request(2), 6);
        // The same state with clients 0 and 2 swapped, writers renamed in order.
        let mut b = a;
        b.clients.swap(0, 2);
        let mut messages = [request(2), request(0)];
        b.set_network(&mut messages);
        for client in &mut b.clients[..3] {
            client.writer += 1;
        }
        b.clients[2].held.stamp.writer += 1;
        b.edits[0].stamp.writer += 1;
        assert_ne!(a, b);
        canonicalize(&mut a, true);
        canonicalize(&mut b, true);
        assert_eq!(a, b);
    }
}
