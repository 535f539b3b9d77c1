//! The backend's merge of one write into a field-merged document: the
//! decision for the write as a whole and for each field it speaks of. The
//! state after it is always `stored.join_write(incoming)` (on `Ok`): stale
//! fields change nothing by construction, so a partly stale patch applies
//! the fields that win and keeps the rest, and the report says which.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::{Clock, Decision, MergeError, MergePolicy};

use super::{Change, FieldDocument, FieldWrite};

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldReport {
    /// The write as a whole, with whole-document mode's meaning:
    /// `APPLIED`, everything it says is now stored; `STALE`, a larger stamp
    /// is stored for at least one field it speaks of (or, for a whole
    /// document, anywhere in the document): adopt the document returned;
    /// `UNCHANGED`, everything it says was already stored.
    pub decision: Decision,
    /// Per field: a patch's fields; for a whole-document write, its fields
    /// and every field the document listed before (removed unless newer).
    /// Each is decided against that field's own stamp (or the floor's).
    pub fields: BTreeMap<String, Decision>,
}

/// Decides what `incoming` does to `stored`. Refuses (changing nothing) a
/// field stored under the same stamp with other content, and a clock more
/// than the policy's jump past the document's clock when anything would
/// apply; a write that is stale everywhere is never refused for its clock;
/// and a write that would change the document and leave it over the
/// policy's stored size.
pub fn merge(
    stored: &FieldDocument,
    incoming: &FieldWrite,
    policy: MergePolicy,
) -> Result<FieldReport, MergeError> {
    let mut fields = BTreeMap::new();
    for (name, value) in spoken_of(stored, &incoming.change) {
        let decision = match stored.stamp_of(&name).map(|s| incoming.stamp.cmp(s)) {
            None | Some(Ordering::Greater) => Decision::Applied,
            Some(Ordering::Less) => Decision::Stale,
            Some(Ordering::Equal) if stored.value_of(&name) == value.as_ref() => {
                Decision::Unchanged
            }
            Some(Ordering::Equal) => return Err(conflict(incoming)),
        };
        fields.insert(name, decision);
    }
    let decision = match &incoming.change {
        Change::Patch(_) => summarize(fields.values().copied()),
        // As in whole-document mode, against the document's stamp: APPLIED
        // only if the document is now exactly this write.
        Change::Whole(_) => match stored.stamp().map(|s| incoming.stamp.cmp(s)) {
            None | Some(Ordering::Greater) => Decision::Applied,
            Some(Ordering::Less) => Decision::Stale,
            Some(Ordering::Equal) if *stored == FieldDocument::from_write(incoming) => {
                Decision::Unchanged
            }
            Some(Ordering::Equal) => return Err(conflict(incoming)),
        },
    };
    let applies = decision == Decision::Applied || fields.values().any(|d| *d == Decision::Applied);
    let document_clock = stored.stamp().map_or(Clock::ZERO, |s| s.clock);
    if applies && incoming.stamp.clock.get() > policy.clock_ceiling(document_clock) {
        return Err(MergeError::ClockJump {
            incoming: incoming.stamp.clock,
            stored: document_clock,
            max_jump: policy.max_clock_jump,
        });
    }
    if policy.max_stored_bytes < usize::MAX {
        let next = stored.join_write(incoming);
        let size = next.stored_size();
        if size > policy.max_stored_bytes && next != *stored {
            let max = policy.max_stored_bytes;
            return Err(MergeError::TooLarge { size, max });
        }
    }
    Ok(FieldReport { decision, fields })
}

/// The fields a change speaks of, with the value it gives each.
fn spoken_of(
    stored: &FieldDocument,
    change: &Change,
) -> BTreeMap<String, Option<serde_json::Value>> {
    match change {
        Change::Patch(patch) => (patch.iter())
            .map(|(name, op)| (name.clone(), op.value().cloned()))
            .collect(),
        Change::Whole(value) => {
            let removed = stored.entries().map(|(name, _)| (name.to_owned(), None));
            let set = (value.as_object().into_iter().flatten())
                .map(|(name, v)| (name.clone(), Some(v.clone())));
            // `set` last: a field the write sets overrides its removal.
            removed.chain(set).collect()
        }
    }
}

/// One decision for a patch: `STALE` if any field is (the caller has
/// something to adopt), else `APPLIED` if any field is, else `UNCHANGED`
/// (an empty patch is a read).
fn summarize(fields: impl Iterator<Item = Decision> + Clone) -> Decision {
    if fields.clone().any(|d| d == Decision::Stale) {
        Decision::Stale
    } else if fields.clone().any(|d| d == Decision::Applied) {
        Decision::Applied
    } else {
        Decision::Unchanged
    }
}

fn conflict(incoming: &FieldWrite) -> MergeError {
    MergeError::ConflictingContent(incoming.stamp.clone())
}
