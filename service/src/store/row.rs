//! One decoding of a stored row for both databases.

use chrono::{DateTime, Utc};
use settings_sync_protocol::{Clock, Document, DocumentKey, Stamp, Value, Versioned, WriterId};

use super::StoreError;

/// The columns every document query selects, in this order:
/// tenant, owner, name, value (JSON text or NULL), clock, writer, revision, updated_at.
#[derive(sqlx::FromRow)]
pub(super) struct Row {
    pub tenant: String,
    pub owner: String,
    pub name: String,
    pub value: Option<String>,
    pub clock: i64,
    pub writer: String,
    pub revision: i64,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Document {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let key_text = format!("{}/{}/{}", row.tenant, row.owner, row.name);
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key_text.clone(),
            reason,
        };
        let key = DocumentKey::parse(&row.tenant, &row.owner, &row.name)
            .map_err(|e| corrupt(e.to_string()))?;
        let value = match row.value {
            None => Value::TOMBSTONE,
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| e.to_string())
                .and_then(|json| Value::from_json(json).map_err(|e| e.to_string()))
                .map_err(corrupt)?,
        };
        let clock = Clock::try_from(row.clock).map_err(|e| corrupt(e.to_string()))?;
        let writer = WriterId::parse(row.writer).map_err(|e| corrupt(e.to_string()))?;
        Ok(Document {
            key,
            state: Versioned {
                value,
                stamp: Stamp::new(clock, writer),
            },
            revision: row.revision,
            updated_at: row.updated_at.into(),
        })
    }
}

/// The value as bound into SQL: canonical JSON text, NULL for a tombstone.
pub(super) fn value_param(value: &Value) -> Option<String> {
    (!value.is_tombstone()).then(|| value.canonical())
}

/// The clock-jump limit as a SQL parameter; it is compared with a
/// difference of two non-negative bigints, so capping at i64::MAX is exact.
pub(super) fn jump_param(max_clock_jump: u64) -> i64 {
    i64::try_from(max_clock_jump).unwrap_or(i64::MAX)
}
