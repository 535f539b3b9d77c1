//! The client half of the per-field mode.
//!
//! - edit: `clock = max(clock, last seen clock) + 1`, one stamp for the
//!   whole patch (or whole document), shown at once;
//! - receive the backend's document: the per-field adopt rule, [`adopt`]:
//!   each field takes the backend's register if its stamp is larger (the
//!   same holds for the floor), which is the join; the clock becomes the
//!   max of both;
//! - every own write is kept, exactly as made, until the backend's document
//!   shows it merged ([`confirmed`]); a sync re-sends those, each under its
//!   own stamp. Never re-stamped: a fresh stamp on an old value could
//!   overtake a causally later edit (counterexample 2 of `docs/protocol.md`).

use crate::{Clock, Stamp, WriterId};

use super::{Change, FieldDocument, FieldWrite};

#[derive(Clone, Debug)]
pub struct FieldReplica {
    writer: WriterId,
    clock: Clock,
    document: FieldDocument,
    unconfirmed: Vec<FieldWrite>,
}

impl FieldReplica {
    pub fn new(writer: WriterId) -> Self {
        FieldReplica {
            writer,
            clock: Clock::ZERO,
            document: FieldDocument::new(),
            unconfirmed: Vec::new(),
        }
    }

    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// What the user sees now, field by field.
    pub fn document(&self) -> &FieldDocument {
        &self.document
    }

    /// Own writes the backend has not yet been seen to hold (or overtake):
    /// what a sync sends, one request each, oldest first.
    pub fn unconfirmed(&self) -> &[FieldWrite] {
        &self.unconfirmed
    }

    /// A local edit: takes effect at once and returns the write to send.
    pub fn edit(&mut self, change: Change) -> FieldWrite {
        self.clock = self.clock.tick();
        let write = FieldWrite {
            stamp: Stamp::new(self.clock, self.writer.clone()),
            change,
        };
        self.document = self.document.join_write(&write);
        self.unconfirmed.push(write.clone());
        write
    }

    /// Applies the backend's document; returns the names of the fields
    /// whose shown value changed. A late answer to an earlier request
    /// carries smaller stamps than newer local edits, field by field, so it
    /// never undoes them.
    pub fn observe(&mut self, remote: &FieldDocument) -> Vec<String> {
        if let Some(stamp) = remote.stamp() {
            self.clock = self.clock.max(stamp.clock);
        }
        let before = std::mem::take(&mut self.document);
        self.document = adopt(&before, remote);
        self.unconfirmed.retain(|write| !confirmed(write, remote));
        changed_fields(&before, &self.document)
    }
}

/// The per-field adopt rule: every field (and the floor) takes the remote
/// register iff its stamp is larger than the local one. That is the join.
pub fn adopt(local: &FieldDocument, remote: &FieldDocument) -> FieldDocument {
    local.join(remote)
}

/// Whether `remote` (a backend's document) holds `write` or something newer
/// in every register it speaks of, so re-sending it could change nothing.
pub fn confirmed(write: &FieldWrite, remote: &FieldDocument) -> bool {
    let at_least = |stamp: Option<&Stamp>| stamp.is_some_and(|s| *s >= write.stamp);
    match &write.change {
        Change::Patch(patch) => patch.keys().all(|name| at_least(remote.stamp_of(name))),
        // The floor speaks of every field at once.
        Change::Whole(_) => at_least(remote.floor().map(|f| &f.stamp)),
    }
}

fn changed_fields(before: &FieldDocument, after: &FieldDocument) -> Vec<String> {
    let mut names: Vec<String> = (before.entries().chain(after.entries()))
        .map(|(name, _)| name.to_owned())
        .filter(|name| before.value_of(name) != after.value_of(name))
        .collect();
    names.sort();
    names.dedup();
    names
}
