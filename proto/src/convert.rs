//! Conversions between wire messages and protocol types. Parsing is strict
//! ("parse, don't validate"): a message that converts is a valid value.

use std::time::SystemTime;

use settings_sync_protocol::{
    Clock, ClockError, Document, DocumentKey, IdError, Stamp, Value, ValueError, ValueLimits,
    Versioned, WriterId, WriterIdError,
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
}

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
        }
    }
}

/// A document as the server sent it. The server's limits are not the
/// client's business, so the value is parsed without them.
impl TryFrom<v1::Document> for Document {
    type Error = WireError;

    fn try_from(document: v1::Document) -> Result<Self, WireError> {
        let stamp = document.stamp.ok_or(WireError::Missing("stamp"))?;
        let stamp = Stamp::new(Clock::new(stamp.clock)?, WriterId::parse(stamp.writer)?);
        let json = serde_json::from_str(&document.value_json)
            .map_err(|e| WireError::Value(ValueError::NotJson(e.to_string())))?;
        let updated_at = document
            .updated_at
            .map(SystemTime::try_from)
            .transpose()
            .map_err(|_| WireError::Timestamp)?
            .ok_or(WireError::Missing("updated_at"))?;
        Ok(Document {
            key: parse_key(document.key)?,
            state: Versioned {
                value: Value::from_json(json)?,
                stamp,
            },
            revision: document.revision,
            updated_at,
        })
    }
}
