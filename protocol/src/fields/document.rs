//! The field-merged document and its join.
//!
//! Abstractly a document maps *every* field name to a register
//! `(stamp, value or absent)`; names it does not list map to
//! `(floor, absent)`, the floor being the stamp of the last whole-document
//! write (below every stamp if there was none). The join is the pointwise
//! larger stamp, a product of last-writer-wins registers, hence a lattice.
//! The representation lists only the names that differ from the floor's
//! default, so two equal documents are equal structurally, and a field
//! tombstone the floor has passed is simply no longer listed (it would say
//! what the floor already says).

use std::collections::BTreeMap;

use crate::{Stamp, Value, Versioned};

/// What a field tombstone counts in [`FieldDocument::stored_size`] besides
/// its name: the most a writer id takes (64 bytes).
pub const TOMBSTONE_BYTES: usize = 64;

/// The fields a patch sets or deletes, by top-level name.
pub type Patch = BTreeMap<String, FieldOp>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOp {
    Set(serde_json::Value),
    Delete,
}

impl FieldOp {
    /// The field's value after this operation (`None`: absent).
    pub fn value(&self) -> Option<&serde_json::Value> {
        match self {
            FieldOp::Set(value) => Some(value),
            FieldOp::Delete => None,
        }
    }
}

/// What one write says: either a patch of named fields, or a whole document
/// (a JSON object, or a tombstone: the document deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Patch(Patch),
    Whole(Value),
}

/// A write: one change under one stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldWrite {
    pub stamp: Stamp,
    pub change: Change,
}

/// One field's register: the stamp of the write that last set or deleted
/// it, and its value (`None`: a field tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldEntry {
    pub stamp: Stamp,
    pub value: Option<serde_json::Value>,
}

/// The last whole-document write: every field it did not set is absent as
/// of its stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Floor {
    pub stamp: Stamp,
    /// The write was a delete of the whole document.
    pub deleted: bool,
}

/// A field-merged document.
///
/// Invariant (kept by every constructor and the join): every listed entry
/// has a stamp above the floor, or equal to it with a value (set by the
/// floor's own write). So a tombstone is listed only while it is above the
/// floor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldDocument {
    floor: Option<Floor>,
    fields: BTreeMap<String, FieldEntry>,
}

impl FieldDocument {
    /// The document nothing was written to: below every write.
    pub fn new() -> Self {
        FieldDocument::default()
    }

    /// The state that is exactly `write`: a patch lists its fields; a whole
    /// document sets the floor and lists its fields.
    pub fn from_write(write: &FieldWrite) -> Self {
        let entry = |value: Option<&serde_json::Value>| FieldEntry {
            stamp: write.stamp.clone(),
            value: value.cloned(),
        };
        match &write.change {
            Change::Patch(patch) => FieldDocument {
                floor: None,
                fields: (patch.iter())
                    .map(|(name, op)| (name.clone(), entry(op.value())))
                    .collect(),
            },
            Change::Whole(value) => FieldDocument {
                floor: Some(Floor {
                    stamp: write.stamp.clone(),
                    deleted: value.is_tombstone(),
                }),
                fields: (value.as_object().into_iter().flatten())
                    .map(|(name, v)| (name.clone(), entry(Some(v))))
                    .collect(),
            },
        }
    }

    /// A document from its parts, as a store or the wire keeps them;
    /// refused unless it is in the one form the join produces (every entry
    /// above the floor, or at it with a value), so equal states stay equal.
    pub fn from_parts(
        floor: Option<Floor>,
        fields: BTreeMap<String, FieldEntry>,
    ) -> Result<Self, NotJoinForm> {
        if let Some((name, _)) = (fields.iter()).find(|(_, e)| covered(floor.as_ref(), e)) {
            return Err(NotJoinForm(name.clone()));
        }
        Ok(FieldDocument { floor, fields })
    }

    /// Whether any field holds a write other than the last whole-document
    /// one, i.e. a patch the floor has not passed. A document that holds
    /// none is exactly `from_write` of one whole-document write: its
    /// merged value under its stamp says everything.
    pub fn holds_patch(&self) -> bool {
        let floor = self.floor.as_ref().map(|f| &f.stamp);
        self.fields.values().any(|e| Some(&e.stamp) != floor)
    }

    pub fn floor(&self) -> Option<&Floor> {
        self.floor.as_ref()
    }

    /// The listed fields (values and tombstones above the floor), by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &FieldEntry)> {
        self.fields
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// The stamp that governs `name`: its own entry's, else the floor's;
    /// `None` if nothing was ever written that speaks of it.
    pub fn stamp_of(&self, name: &str) -> Option<&Stamp> {
        match self.fields.get(name) {
            Some(entry) => Some(&entry.stamp),
            None => self.floor.as_ref().map(|floor| &floor.stamp),
        }
    }

    /// The value of field `name` (`None`: absent).
    pub fn value_of(&self, name: &str) -> Option<&serde_json::Value> {
        self.fields.get(name).and_then(|entry| entry.value.as_ref())
    }

    /// The document's stamp: the largest of its floor's and its fields'.
    pub fn stamp(&self) -> Option<&Stamp> {
        let fields = self.fields.values().map(|entry| &entry.stamp);
        fields.chain(self.floor.as_ref().map(|f| &f.stamp)).max()
    }

    /// The merged value: the object of the fields that have a value, or a
    /// tombstone if there is none and the last whole-document write was a
    /// delete (or there was none: a document made by patches alone exists
    /// while one of its fields has a value).
    pub fn value(&self) -> Value {
        let live: serde_json::Map<String, serde_json::Value> = (self.fields.iter())
            .filter_map(|(name, entry)| Some((name.clone(), entry.value.clone()?)))
            .collect();
        if live.is_empty() && self.floor.as_ref().is_none_or(|floor| floor.deleted) {
            return Value::TOMBSTONE;
        }
        Value::object(live)
    }

    /// The size a store counts against its limit: the merged value's
    /// compact JSON text (`Value::canonical`), plus, for each field
    /// tombstone, its name and [`TOMBSTONE_BYTES`]. A tombstone has no
    /// value but is kept (and sent with the document) until a whole write
    /// collects it, so it must count; the constant stands for its stamp.
    pub fn stored_size(&self) -> usize {
        let tombstones: usize = (self.fields.iter())
            .filter(|(_, entry)| entry.value.is_none())
            .map(|(name, _)| name.len() + TOMBSTONE_BYTES)
            .sum();
        self.value().canonical().len() + tombstones
    }

    /// The merged value with the document's stamp, as a whole-document
    /// reader sees it; `None` if nothing was written.
    pub fn versioned(&self) -> Option<Versioned> {
        Some(Versioned {
            value: self.value(),
            stamp: self.stamp()?.clone(),
        })
    }

    /// The lattice join: the larger floor, and for every name the entry
    /// with the larger stamp, unless the floor now covers it. Equal stamps
    /// are one write (a writer never reuses a stamp), so which side is kept
    /// then does not matter; `merge` refuses a write that breaks this.
    pub fn join(&self, other: &FieldDocument) -> FieldDocument {
        let floor = match (&self.floor, &other.floor) {
            (Some(a), Some(b)) if b.stamp > a.stamp => Some(b.clone()),
            (Some(a), _) => Some(a.clone()),
            (None, b) => b.clone(),
        };
        let mut fields = self.fields.clone();
        for (name, entry) in &other.fields {
            match fields.get(name) {
                Some(kept) if kept.stamp >= entry.stamp => {}
                _ => {
                    fields.insert(name.clone(), entry.clone());
                }
            }
        }
        fields.retain(|_, entry| !covered(floor.as_ref(), entry));
        FieldDocument { floor, fields }
    }

    /// The state after `write` is merged in: `self.join(from_write(write))`.
    pub fn join_write(&self, write: &FieldWrite) -> FieldDocument {
        self.join(&FieldDocument::from_write(write))
    }
}

/// A field listed that the floor already covers: not a state the join makes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {0:?} is listed at or below the floor without a value of the floor's write")]
pub struct NotJoinForm(pub String);

/// Whether the floor says all `entry` says: it is older than the floor's
/// write, or it is that write's own "absent". Dropping it is the tombstone
/// collection: it changes no register, so nothing can come back.
fn covered(floor: Option<&Floor>, entry: &FieldEntry) -> bool {
    floor.is_some_and(|floor| {
        entry.stamp < floor.stamp || (entry.stamp == floor.stamp && entry.value.is_none())
    })
}
