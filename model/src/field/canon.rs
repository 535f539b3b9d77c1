//! Canonicalization of per-field states: the whole-document model's three
//! exact reductions (`crate::canon`), over documents of fields, and one
//! more, **field symmetry**: the rules treat field names as opaque keys, the
//! properties hold for every field alike and the patches a client may make
//! are closed under swapping f0 and f1, so a state and its mirror image are
//! one state. The representative has the smaller entry in the backend's f0,
//! or if both are equal the smaller fingerprint.

use std::cmp::Ordering;

use super::state::{Doc, EditRecord, Entry, FIELDS, Message, State};
use crate::canon::{Names, fingerprint, fresh_names, writer_name};
use crate::state::{Edits, Kind, MAX_CLIENTS, MAX_IN_FLIGHT, bit};

pub fn canonicalize(state: &mut State) {
    collect_dead_edits(state);
    rename_writers(state);
    sort_clients(state);
    // Orient by the backend's fields, which mirroring swaps; only when they
    // are equal does the choice need the whole mirror image.
    let mirror = match state.backend[0].cmp(&state.backend[1]) {
        Ordering::Less => return,
        Ordering::Greater => true,
        Ordering::Equal => {
            let mut mirror = mirrored(state);
            sort_clients(&mut mirror);
            if fingerprint(&mirror) < fingerprint(state) {
                *state = mirror;
            }
            return;
        }
    };
    if mirror {
        *state = mirrored(state);
        sort_clients(state);
    }
}

/// `state` with f0 and f1 swapped everywhere.
fn mirrored(state: &State) -> State {
    let mut m = *state;
    let n = m.clients_len as usize;
    for client in &mut m.clients[..n] {
        client.doc.reverse();
    }
    let len = m.in_flight as usize;
    let mut messages = m.network;
    for message in &mut messages[..len] {
        message.doc.reverse();
    }
    m.set_network(&mut messages[..len]);
    m.backend.reverse();
    for record in &mut m.edits[..m.made as usize] {
        record.ops.reverse();
    }
    m.acknowledged.reverse();
    m.dead_acknowledged.reverse();
    m.dead_acknowledged_past.reverse();
    m
}

/// The free names for a new incarnation of client `client`.
pub fn fresh_writer_names(state: &State, client: usize) -> Vec<u8> {
    fresh_names(writers(state, Some(client)))
}

fn docs(state: &State) -> impl Iterator<Item = &Doc> {
    let clients = state.clients().iter().map(|c| &c.doc);
    let messages = state.messages().iter().map(|m| &m.doc);
    clients.chain(messages).chain([&state.backend])
}

fn writers(state: &State, except: Option<usize>) -> Names {
    let mut used = Names::default();
    for (i, client) in state.clients().iter().enumerate() {
        if Some(i) != except {
            used.insert(client.writer);
        }
    }
    for entry in docs(state).flatten().filter(|e| e.edit.is_some()) {
        used.insert(entry.stamp.writer);
    }
    for edit in state.edits().iter().filter(|e| e.stamp.clock > 0) {
        used.insert(edit.stamp.writer);
    }
    for stamp in state.dead_acknowledged.iter().flatten() {
        used.insert(stamp.writer);
    }
    used
}

/// Forgets edits that exist nowhere any more — no document or message holds
/// one, no client has it to re-send — as the whole-document model does,
/// keeping per field the summary P5 needs of acknowledged ones.
pub fn collect_dead_edits(state: &mut State) {
    let mut live: Edits = 0;
    for entry in docs(state).flatten() {
        if let Some(edit) = entry.edit {
            live |= bit(edit);
        }
    }
    for client in state.clients() {
        live |= client.unconfirmed;
    }
    let dead = (((1u32 << state.made) - 1) as Edits) & !live;
    if dead == 0 {
        return;
    }
    for edit in (0..state.made).filter(|&e| dead & bit(e) != 0) {
        let record = state.record(edit);
        for f in 0..FIELDS {
            if state.acknowledged[f] & bit(edit) != 0 {
                state.dead_acknowledged[f] = state.dead_acknowledged[f].max(Some(record.stamp));
                state.dead_acknowledged_past[f] |= record.past;
            }
        }
        state.edits[edit as usize] = EditRecord::default();
    }
    for f in 0..FIELDS {
        state.acknowledged[f] &= !dead;
        state.dead_acknowledged_past[f] &= !dead;
    }
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
        return;
    }
    let mut rename = [0u8; 256];
    for (name, rank) in used.iter().zip(0..) {
        rename[name as usize] = writer_name(rank);
    }
    let entry = |e: &mut Entry| {
        if e.edit.is_some() {
            e.stamp.writer = rename[e.stamp.writer as usize];
        }
    };
    let n = state.clients_len as usize;
    for client in &mut state.clients[..n] {
        client.writer = rename[client.writer as usize];
        client.doc.iter_mut().for_each(entry);
    }
    for message in &mut state.network[..state.in_flight as usize] {
        message.doc.iter_mut().for_each(entry);
    }
    state.backend.iter_mut().for_each(entry);
    for edit in &mut state.edits[..state.made as usize] {
        if edit.stamp.clock > 0 {
            edit.stamp.writer = rename[edit.stamp.writer as usize];
        }
    }
    for stamp in state.dead_acknowledged.iter_mut().flatten() {
        stamp.writer = rename[stamp.writer as usize];
    }
    // Renaming preserves order, so the network stays sorted.
}

fn sort_clients(state: &mut State) {
    let n = state.clients_len as usize;
    let mut keys = [([(Kind::Request, Doc::default()); MAX_IN_FLIGHT], 0usize); MAX_CLIENTS];
    for message in state.messages() {
        let (list, len) = &mut keys[message.client as usize];
        list[*len] = (message.kind, message.doc);
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
