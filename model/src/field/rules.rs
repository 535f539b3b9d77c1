//! The per-field rules, pluggable. `Correct` is the protocol crate's code
//! (through `real`); the others are planted bugs the checker must catch,
//! written out here and never in the protocol crate. Clients run the
//! correct rules under all of them: the bugs are the backend's.

use settings_sync_protocol::Decision;

use super::real::{self, Decisions};
use super::state::{Doc, Entry, FIELDS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldRules {
    /// `fields::merge` and `FieldDocument::join_write` at the backend.
    Correct,
    /// Planted: a patch's fields are decided against the *document's* stamp
    /// (the largest of its fields') instead of each field's own: a patch
    /// applies as a whole if its stamp beats the document's, else is stale.
    DocumentStamp,
    /// Planted: a deleted field is removed from the document, stamp and all,
    /// instead of kept as a field tombstone.
    ForgetTombstones,
}

impl FieldRules {
    pub const ALL: [FieldRules; 3] = [
        FieldRules::Correct,
        FieldRules::DocumentStamp,
        FieldRules::ForgetTombstones,
    ];

    /// The backend receives the patch `incoming`: per-field decisions, or
    /// `None` if it refused it. A read changes nothing.
    pub fn backend_receive(self, stored: &mut Doc, incoming: Doc) -> Option<Decisions> {
        if incoming.iter().all(|e| e.edit.is_none()) {
            return Some([None; FIELDS]);
        }
        match self {
            FieldRules::Correct => {
                let (decisions, after) = real::backend_merge(*stored, incoming);
                *stored = after;
                decisions
            }
            FieldRules::DocumentStamp => {
                let document = stored.iter().map(|e| e.stamp).max().unwrap_or_default();
                let stamp = incoming.iter().find(|e| e.edit.is_some())?.stamp;
                let unwritten = stored.iter().all(|e| e.edit.is_none());
                let wins = unwritten || stamp > document;
                Some(std::array::from_fn(|f| {
                    let entry = incoming[f];
                    entry.edit?;
                    Some(if stored[f] == entry {
                        Decision::Unchanged
                    } else if wins {
                        stored[f] = entry;
                        Decision::Applied
                    } else {
                        Decision::Stale
                    })
                }))
            }
            FieldRules::ForgetTombstones => {
                let (decisions, mut after) = real::backend_merge(*stored, incoming);
                for entry in after.iter_mut().filter(|e| e.deleted) {
                    *entry = Entry::default();
                }
                *stored = after;
                decisions
            }
        }
    }
}
