//! The correct per-field rules are the protocol crate's own code:
//! `fields::merge` (the decisions) and `FieldDocument::join_write` (the
//! result) at the backend; `FieldReplica::edit` and `FieldReplica::observe`
//! (so `fields::adopt`) and `fields::confirmed` at the client. This module
//! translates model values to protocol values and back, memoizing each call
//! per distinct input, as the whole-document `real` does.
//!
//! Field `i` is named `f{i}`; a set field's value is its edit's id; writer
//! names become the zero-padded ids of the whole-document model.

use std::cell::RefCell;
use std::hash::Hash;

use serde_json::json;
use settings_sync_protocol::fields::{
    Change, FieldDocument, FieldOp, FieldReplica, FieldWrite, Patch, confirmed, merge,
};
use settings_sync_protocol::{Clock, Decision, MergePolicy, Stamp as RealStamp, WriterId};

use super::state::{Doc, Entry, FIELDS};
use crate::canon::FastMap;
use crate::state::{EditId, Stamp};

/// Per field, the decision for the fields a request speaks of.
pub type Decisions = [Option<Decision>; FIELDS];

/// The backend merges the patch `incoming` into `stored`: the decisions
/// (`None` if the merge refused the write) and the document after it.
pub fn backend_merge(stored: Doc, incoming: Doc) -> (Option<Decisions>, Doc) {
    thread_local!(static MEMO: Memo<(Doc, Doc), (Option<Decisions>, Doc)> = Default::default());
    memoized(&MEMO, (stored, incoming), || {
        let write = write(&incoming).expect("reads never reach the merge");
        let stored_real = document(&stored);
        let Ok(report) = merge(&stored_real, &write, MergePolicy::UNBOUNDED) else {
            return (None, stored);
        };
        let decisions = std::array::from_fn(|f| report.fields.get(&name(f)).copied());
        let after = stored_real.join_write(&write);
        (Some(decisions), doc(&after, [&stored, &incoming]))
    })
}

/// A client of writer `writer` showing `current` edits: `edit` with `patch`
/// (its entries' stamps are ignored: the replica stamps it). Returns the
/// new clock and document.
pub fn client_edit(writer: u8, current: Doc, clock: u8, patch: Doc) -> (u8, Doc) {
    thread_local!(static MEMO: Memo<(u8, Doc, u8, Doc), (u8, Doc)> = Default::default());
    memoized(&MEMO, (writer, current, clock, patch), || {
        let mut replica = rebuild(writer, current, clock);
        let made = replica.edit(Change::Patch(ops(&patch)));
        let stamped = patch.map(|e| match e.edit {
            None => e,
            Some(_) => Entry {
                stamp: stamp_back(&made.stamp),
                ..e
            },
        });
        let clock = u8::try_from(replica.clock().get()).expect("model clocks are small");
        (clock, doc(replica.document(), [&current, &stamped]))
    })
}

/// The same client receives the backend's document `remote`: its new clock
/// and document.
pub fn client_observe(writer: u8, current: Doc, clock: u8, remote: Doc) -> (u8, Doc) {
    thread_local!(static MEMO: Memo<(u8, Doc, u8, Doc), (u8, Doc)> = Default::default());
    memoized(&MEMO, (writer, current, clock, remote), || {
        let mut replica = rebuild(writer, current, clock);
        replica.observe(&document(&remote));
        let clock = u8::try_from(replica.clock().get()).expect("model clocks are small");
        (clock, doc(replica.document(), [&current, &remote]))
    })
}

/// Whether the backend's document `remote` shows the write `patch` merged.
pub fn is_confirmed(patch: Doc, remote: Doc) -> bool {
    thread_local!(static MEMO: Memo<(Doc, Doc), bool> = Default::default());
    memoized(&MEMO, (patch, remote), || {
        let write = write(&patch).expect("an edit speaks of a field");
        confirmed(&write, &document(&remote))
    })
}

type Memo<K, V> = RefCell<FastMap<K, V>>;

fn memoized<K: Hash + Eq + Copy, V: Copy>(
    memo: &'static std::thread::LocalKey<Memo<K, V>>,
    key: K,
    compute: impl FnOnce() -> V,
) -> V {
    if let Some(found) = memo.with(|m| m.borrow().get(&key).copied()) {
        return found;
    }
    let value = compute();
    memo.with(|m| m.borrow_mut().insert(key, value));
    value
}

/// A `FieldReplica` in the model's client state, rebuilt by observing its
/// own document (it offers no setter). That reaches every state a correct
/// replica can be in, because its clock always equals the largest stamp it
/// shows; the model refuses to go on if that breaks. Its queue of
/// unconfirmed writes is the model's own (`Client::unconfirmed`), kept with
/// `is_confirmed`.
fn rebuild(writer: u8, current: Doc, clock: u8) -> FieldReplica {
    let mut replica = FieldReplica::new(writer_id(writer));
    replica.observe(&document(&current));
    assert_eq!(
        replica.clock().get(),
        u64::from(clock),
        "a replica's clock ran ahead of its document ({current:?} at clock {clock})"
    );
    replica
}

fn name(field: usize) -> String {
    format!("f{field}")
}

fn writer_id(writer: u8) -> WriterId {
    WriterId::parse(format!("w{writer:03}")).expect("a valid writer id")
}

fn real_stamp(stamp: Stamp) -> RealStamp {
    let clock = Clock::new(u64::from(stamp.clock)).expect("model clocks are small");
    RealStamp::new(clock, writer_id(stamp.writer))
}

fn stamp_back(stamp: &RealStamp) -> Stamp {
    Stamp {
        clock: u8::try_from(stamp.clock.get()).expect("model clocks are small"),
        writer: stamp.writer.as_str()[1..]
            .parse()
            .expect("the protocol returned a writer the model did not make"),
    }
}

fn ops(patch: &Doc) -> Patch {
    (patch.iter().enumerate())
        .filter(|(_, e)| e.edit.is_some())
        .map(|(f, e)| {
            let op = match e.deleted {
                true => FieldOp::Delete,
                false => FieldOp::Set(json!(e.edit)),
            };
            (name(f), op)
        })
        .collect()
}

/// The write a request carries; `None` for a read.
fn write(patch: &Doc) -> Option<FieldWrite> {
    let stamp = patch.iter().find(|e| e.edit.is_some())?.stamp;
    Some(FieldWrite {
        stamp: real_stamp(stamp),
        change: Change::Patch(ops(patch)),
    })
}

/// The model's document as the protocol's: the join of one patch per entry.
fn document(d: &Doc) -> FieldDocument {
    let mut real = FieldDocument::new();
    for (f, entry) in d.iter().enumerate() {
        let mut single = Doc::default();
        single[f] = *entry;
        if let Some(w) = write(&single) {
            real = real.join_write(&w);
        }
    }
    real
}

/// The protocol's document back in the model's terms. A tombstone carries
/// no value, so its edit is the one among `from` (the inputs of the call)
/// that holds that field under that stamp.
fn doc(real: &FieldDocument, from: [&Doc; 2]) -> Doc {
    std::array::from_fn(|f| {
        let Some(stamp) = real.stamp_of(&name(f)).map(stamp_back) else {
            return Entry::default();
        };
        let entry = from
            .iter()
            .map(|d| d[f])
            .find(|e| e.stamp == stamp && e.edit.is_some());
        let entry = entry.expect("the protocol returned a stamp the model did not make");
        let value = real.value_of(&name(f));
        let edit: Option<EditId> = value.and_then(|v| v.as_u64()).map(|v| v as EditId);
        assert_eq!(
            (edit, value.is_none()),
            (entry.edit.filter(|_| !entry.deleted), entry.deleted),
            "the protocol returned content the model did not make"
        );
        entry
    })
}
