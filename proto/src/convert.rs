//! Conversions between wire messages and protocol types. Parsing is strict
//! ("parse, don't validate"): a message that converts is a valid value.

use std::collections::BTreeMap;
use std::time::SystemTime;

use settings_sync_protocol::fields::{
    Change, FieldDocument, FieldEntry, FieldOp, FieldWrite, Floor, NotJoinForm, Patch,
};
use settings_sync_protocol::overrides::{Lost, Override, OverrideKind};
use settings_sync_protocol::{
    Clock, ClockError, Decision, Document, DocumentKey, IdError, Stamp, Value, ValueError,
    ValueLimits, Versioned, WriterId, WriterIdError,
};

use crate::v1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error(transparent)]
    Key(#[from] IdError),
    #[error("stamp.clock: {0}")]
    Clock(#[from] ClockError),
    #[error("stamp.clock must be at least 1: a write ticks its clock past 0")]
    ZeroClock,
    #[error("stamp.writer: {0}")]
    Writer(#[from] WriterIdError),
    #[error("value_json: {0}")]
    Value(#[from] ValueError),
    #[error("updated_at is not a valid time")]
    Timestamp,
    #[error("value_json must be empty when a patch is sent")]
    PatchWithValue,
    #[error(
        "patch: field names must be 1 to {MAX_FIELD_NAME_BYTES} bytes without U+0000, got {0:?}"
    )]
    FieldName(String),
    #[error("patch: field {0:?} is edited twice; send one edit per field")]
    DuplicateField(String),
    #[error("patch: at most {MAX_PATCH_EDITS} edits per write, got {0}")]
    TooManyEdits(usize),
    #[error("patch: field {0:?} has no edit; set set_json, or delete = true")]
    NoEdit(String),
    #[error("patch: field {field:?}: {error}")]
    FieldValue { field: String, error: ValueError },
    #[error("fields: {0}")]
    Registers(#[from] NotJoinForm),
}

/// Longest top-level field name a patch may carry.
pub const MAX_FIELD_NAME_BYTES: usize = 1024;

/// Most edits one patch may carry: a delete costs a few bytes on the wire
/// but a register (stamp and name) in the stored document.
pub const MAX_PATCH_EDITS: usize = 1000;

pub fn parse_key(key: Option<v1::DocumentKey>) -> Result<DocumentKey, WireError> {
    let key = key.ok_or(WireError::Missing("key"))?;
    Ok(DocumentKey::parse(&key.tenant, &key.owner, &key.name)?)
}

/// A stamp on a write: clock 0 is reserved for "nothing seen yet".
pub fn parse_write_stamp(stamp: Option<v1::Stamp>) -> Result<Stamp, WireError> {
    let stamp = stamp.ok_or(WireError::Missing("stamp"))?;
    if stamp.clock == 0 {
        return Err(WireError::ZeroClock);
    }
    Ok(Stamp::new(
        Clock::new(stamp.clock)?,
        WriterId::parse(stamp.writer)?,
    ))
}

/// A write as a caller sends it, checked against the server's limits.
pub fn parse_write(
    value_json: &str,
    stamp: Option<v1::Stamp>,
    limits: ValueLimits,
) -> Result<Versioned, WireError> {
    let stamp = parse_write_stamp(stamp)?;
    let value = Value::parse(value_json, limits)?;
    Ok(Versioned { value, stamp })
}

/// A patch as a caller sends it. The limits hold for the patch as a whole:
/// its names and value texts together are at most `max_bytes`, and a value
/// nests one level less than a whole document may.
pub fn parse_patch(patch: v1::FieldPatch, limits: ValueLimits) -> Result<Patch, WireError> {
    if patch.edits.len() > MAX_PATCH_EDITS {
        return Err(WireError::TooManyEdits(patch.edits.len()));
    }
    let size: usize = (patch.edits.iter())
        .map(|e| e.field.len() + set_text(e).map_or(0, str::len))
        .sum();
    if size > limits.max_bytes {
        let max = limits.max_bytes;
        return Err(WireError::Value(ValueError::TooLarge { size, max }));
    }
    let mut parsed = Patch::new();
    for edit in patch.edits {
        if edit.field.is_empty()
            || edit.field.len() > MAX_FIELD_NAME_BYTES
            || edit.field.contains('\0')
        {
            return Err(WireError::FieldName(edit.field));
        }
        let op = match edit.op {
            Some(v1::field_edit::Op::SetJson(text)) => {
                let value = Value::parse_field(&text, limits);
                let field = edit.field.clone();
                FieldOp::Set(value.map_err(|error| WireError::FieldValue { field, error })?)
            }
            Some(v1::field_edit::Op::Delete(true)) => FieldOp::Delete,
            Some(v1::field_edit::Op::Delete(false)) | None => {
                return Err(WireError::NoEdit(edit.field));
            }
        };
        if parsed.contains_key(&edit.field) {
            return Err(WireError::DuplicateField(edit.field));
        }
        parsed.insert(edit.field, op);
    }
    Ok(parsed)
}

fn set_text(edit: &v1::FieldEdit) -> Option<&str> {
    match &edit.op {
        Some(v1::field_edit::Op::SetJson(text)) => Some(text),
        _ => None,
    }
}

/// A per-field client's write: its patch, or its whole document.
pub fn parse_field_write(
    value_json: &str,
    patch: Option<v1::FieldPatch>,
    stamp: Option<v1::Stamp>,
    limits: ValueLimits,
) -> Result<FieldWrite, WireError> {
    let stamp = parse_write_stamp(stamp)?;
    let change = match patch {
        Some(_) if !value_json.is_empty() => return Err(WireError::PatchWithValue),
        Some(patch) => Change::Patch(parse_patch(patch, limits)?),
        None => Change::Whole(Value::parse(value_json, limits)?),
    };
    Ok(FieldWrite { stamp, change })
}

/// A per-field client's write as a request: its patch (values as JSON
/// text), or its whole document with `per_field` set.
pub fn field_write_request(key: &DocumentKey, write: &FieldWrite) -> v1::SyncRequest {
    let (value_json, patch) = match &write.change {
        Change::Whole(value) => (value.canonical(), None),
        Change::Patch(patch) => {
            let edits = (patch.iter())
                .map(|(field, op)| v1::FieldEdit {
                    field: field.clone(),
                    op: Some(match op {
                        FieldOp::Set(value) => v1::field_edit::Op::SetJson(value.to_string()),
                        FieldOp::Delete => v1::field_edit::Op::Delete(true),
                    }),
                })
                .collect();
            (String::new(), Some(v1::FieldPatch { edits }))
        }
    };
    v1::SyncRequest {
        key: Some(key.into()),
        value_json,
        stamp: Some((&write.stamp).into()),
        patch,
        per_field: true,
    }
}

/// A decision as the server sent it.
pub fn parse_decision(decision: i32) -> Result<Decision, WireError> {
    match v1::Decision::try_from(decision) {
        Ok(v1::Decision::Applied) => Ok(Decision::Applied),
        Ok(v1::Decision::Stale) => Ok(Decision::Stale),
        Ok(v1::Decision::Unchanged) => Ok(Decision::Unchanged),
        _ => Err(WireError::Missing("decision")),
    }
}

impl From<&FieldDocument> for v1::FieldRegisters {
    fn from(document: &FieldDocument) -> Self {
        v1::FieldRegisters {
            floor: document.floor().map(|floor| v1::Floor {
                stamp: Some((&floor.stamp).into()),
                deleted: floor.deleted,
            }),
            stamps: (document.entries())
                .map(|(name, entry)| (name.to_owned(), (&entry.stamp).into()))
                .collect(),
        }
    }
}

/// A stamp as the server sent it (clock 0 allowed: nothing reads it as a write).
fn parse_sent_stamp(stamp: Option<v1::Stamp>) -> Result<Stamp, WireError> {
    let stamp = stamp.ok_or(WireError::Missing("stamp"))?;
    Ok(Stamp::new(
        Clock::new(stamp.clock)?,
        WriterId::parse(stamp.writer)?,
    ))
}

/// The registers behind a document's merged `value`: a listed field's
/// value is its value there, or a tombstone if it is not there.
fn parse_registers(
    registers: v1::FieldRegisters,
    value: &Value,
) -> Result<FieldDocument, WireError> {
    let floor = match registers.floor {
        Some(floor) => Some(Floor {
            stamp: parse_sent_stamp(floor.stamp)?,
            deleted: floor.deleted,
        }),
        None => None,
    };
    let live = value.as_object();
    let mut fields = BTreeMap::new();
    for (name, stamp) in registers.stamps {
        let value = live.and_then(|map| map.get(&name)).cloned();
        let stamp = parse_sent_stamp(Some(stamp))?;
        fields.insert(name, FieldEntry { stamp, value });
    }
    Ok(FieldDocument::from_parts(floor, fields)?)
}

impl From<&DocumentKey> for v1::DocumentKey {
    fn from(key: &DocumentKey) -> Self {
        v1::DocumentKey {
            tenant: key.tenant.to_string(),
            owner: key.owner.to_string(),
            name: key.name.to_string(),
        }
    }
}

impl From<&Stamp> for v1::Stamp {
    fn from(stamp: &Stamp) -> Self {
        v1::Stamp {
            clock: stamp.clock.get(),
            writer: stamp.writer.to_string(),
        }
    }
}

impl From<&Document> for v1::Document {
    fn from(document: &Document) -> Self {
        v1::Document {
            key: Some((&document.key).into()),
            value_json: document.state.value.canonical(),
            stamp: Some((&document.state.stamp).into()),
            revision: document.revision,
            updated_at: Some(document.updated_at.into()),
            fields: document.fields.as_ref().map(|f| Box::new(f.into())),
        }
    }
}

/// A document as the server sent it. The server's limits are not the
/// client's business, so the value is parsed without them.
impl TryFrom<v1::Document> for Document {
    type Error = WireError;

    fn try_from(document: v1::Document) -> Result<Self, WireError> {
        let stamp = parse_sent_stamp(document.stamp)?;
        let json = serde_json::from_str(&document.value_json)
            .map_err(|e| WireError::Value(ValueError::NotJson(e.to_string())))?;
        let updated_at = document
            .updated_at
            .map(SystemTime::try_from)
            .transpose()
            .map_err(|_| WireError::Timestamp)?
            .ok_or(WireError::Missing("updated_at"))?;
        let value = Value::from_json(json)?;
        let fields = (document.fields)
            .map(|registers| parse_registers(*registers, &value))
            .transpose()?;
        Ok(Document {
            key: parse_key(document.key)?,
            state: Versioned { value, stamp },
            fields,
            revision: document.revision,
            updated_at,
        })
    }
}

impl From<&Override> for v1::Override {
    fn from(o: &Override) -> Self {
        let kind = match o.lost.kind {
            OverrideKind::ArrivedStale => v1::OverrideKind::ArrivedStale,
            OverrideKind::Overtaken => v1::OverrideKind::Overtaken,
        };
        v1::Override {
            id: o.id,
            field: o.lost.field.clone().unwrap_or_default(),
            lost_value_json: o.lost.value.clone().unwrap_or_else(|| "null".to_owned()),
            lost_stamp: Some((&o.lost.stamp).into()),
            winner_stamp: Some((&o.lost.winner).into()),
            kind: kind.into(),
            recorded_at: Some(o.recorded_at.into()),
        }
    }
}

/// An override as the server sent it.
impl TryFrom<v1::Override> for Override {
    type Error = WireError;

    fn try_from(o: v1::Override) -> Result<Self, WireError> {
        let kind = match v1::OverrideKind::try_from(o.kind) {
            Ok(v1::OverrideKind::ArrivedStale) => OverrideKind::ArrivedStale,
            Ok(v1::OverrideKind::Overtaken) => OverrideKind::Overtaken,
            _ => return Err(WireError::Missing("kind")),
        };
        let value: serde_json::Value = serde_json::from_str(&o.lost_value_json)
            .map_err(|e| WireError::Value(ValueError::NotJson(e.to_string())))?;
        let recorded_at = (o.recorded_at)
            .map(SystemTime::try_from)
            .transpose()
            .map_err(|_| WireError::Timestamp)?
            .ok_or(WireError::Missing("recorded_at"))?;
        Ok(Override {
            id: o.id,
            lost: Lost {
                field: (!o.field.is_empty()).then_some(o.field),
                value: (!value.is_null()).then(|| value.to_string()),
                stamp: parse_sent_stamp(o.lost_stamp)?,
                winner: parse_sent_stamp(o.winner_stamp)?,
                kind,
            },
            recorded_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use settings_sync_protocol::fields::FieldDocument;

    use super::*;

    fn stamp(clock: u64, writer: &str) -> Stamp {
        Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap())
    }

    fn key() -> DocumentKey {
        DocumentKey::parse("acme", "alice", "alerts").unwrap()
    }

    #[test]
    fn a_per_field_write_survives_the_wire() {
        let patch = Patch::from([
            ("a".to_owned(), FieldOp::Set(json!({"n": [1, null]}))),
            ("b".to_owned(), FieldOp::Set(json!(null))),
            ("c".to_owned(), FieldOp::Delete),
        ]);
        let writes = [
            FieldWrite {
                stamp: stamp(3, "w"),
                change: Change::Patch(patch),
            },
            FieldWrite {
                stamp: stamp(4, "w"),
                change: Change::Whole(Value::from_json(json!({"a": 1})).unwrap()),
            },
        ];
        for write in writes {
            let request = field_write_request(&key(), &write);
            let limits = ValueLimits::default();
            let (value, patch) = (&request.value_json, request.patch);
            assert_eq!(
                parse_field_write(value, patch, request.stamp, limits),
                Ok(write)
            );
        }
    }

    #[test]
    fn the_registers_of_a_document_survive_the_wire() {
        let fields = FieldDocument::new()
            .join_write(&FieldWrite {
                stamp: stamp(1, "x"),
                change: Change::Whole(Value::from_json(json!({"a": 1, "b": 2})).unwrap()),
            })
            .join_write(&FieldWrite {
                stamp: stamp(2, "y"),
                change: Change::Patch(Patch::from([
                    ("b".to_owned(), FieldOp::Delete),
                    ("c".to_owned(), FieldOp::Set(json!(3))),
                ])),
            });
        assert!(fields.holds_patch());
        let document = Document {
            key: key(),
            state: fields.versioned().unwrap(),
            fields: Some(fields),
            revision: 7,
            updated_at: SystemTime::UNIX_EPOCH,
        };
        let wire = v1::Document::from(&document);
        assert_eq!(wire.value_json, r#"{"a":1,"c":3}"#);
        assert_eq!(Document::try_from(wire), Ok(document));
    }

    #[test]
    fn registers_not_in_the_form_the_join_makes_are_refused() {
        // A tombstone at the floor's own stamp says nothing the floor does not.
        let wire = v1::FieldRegisters {
            floor: Some(v1::Floor {
                stamp: Some((&stamp(2, "x")).into()),
                deleted: false,
            }),
            stamps: [("a".to_owned(), (&stamp(2, "x")).into())].into(),
        };
        let value = Value::from_json(json!({})).unwrap();
        assert!(matches!(
            parse_registers(wire, &value),
            Err(WireError::Registers(_))
        ));
    }
}
