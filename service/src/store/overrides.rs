//! The override log as stores keep it: one row per losing value
//! (`settings_sync_protocol::overrides`), written with the merge that made
//! it lose, listed newest first, pruned after a retention period and to a
//! number per document.
//!
//! Who writes what: an *overtaken* value is recorded by the statement that
//! overtakes it (PostgreSQL: a trigger on the document row, so every path,
//! write-combining included, records it in the same statement; SQLite: in
//! Rust, inside the merge's write transaction). A write that *arrived
//! stale* changed nothing; it is recorded before its caller is answered
//! (SQLite per-field: in the merge's transaction), by an insert that a
//! record of the same losing stamp makes a no-op, so a retried request
//! never records twice. A caller is answered STALE only once that insert
//! committed: an acknowledged losing write is always in the log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use settings_sync_protocol::overrides::{Lost, OverrideKind};
use settings_sync_protocol::{Clock, DocumentKey, Stamp, WriterId};

use super::StoreError;

pub use settings_sync_protocol::overrides::Override;

/// How long, and how many per document, overrides are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverrideRetention {
    pub retention: Duration,
    pub max_per_document: usize,
}

/// `field` as stored: '' for the whole document (no field name is empty).
pub(super) fn field_param(lost: &Lost) -> &str {
    lost.field.as_deref().unwrap_or("")
}

/// The columns a row of the log is bound with, for one document.
pub(super) struct Columns<'a> {
    pub field: &'a str,
    pub value: Option<&'a str>,
    pub lost_clock: i64,
    pub lost_writer: &'a str,
    pub winner_clock: i64,
    pub winner_writer: &'a str,
    pub kind: &'static str,
}

impl<'a> Columns<'a> {
    pub fn of(lost: &'a Lost) -> Self {
        Columns {
            field: field_param(lost),
            value: lost.value.as_deref(),
            lost_clock: i64::from(lost.stamp.clock),
            lost_writer: lost.stamp.writer.as_str(),
            winner_clock: i64::from(lost.winner.clock),
            winner_writer: lost.winner.writer.as_str(),
            kind: lost.kind.as_str(),
        }
    }
}

/// The columns of a listed override; JSON as text.
macro_rules! list_columns {
    () => {
        "id, field, CAST(lost_value AS TEXT) AS lost_value, lost_clock, lost_writer, \
         winner_clock, winner_writer, kind, recorded_at"
    };
}
pub(super) use list_columns;

#[derive(sqlx::FromRow)]
pub(super) struct OverrideRow {
    id: i64,
    field: String,
    lost_value: Option<String>,
    lost_clock: i64,
    lost_writer: String,
    winner_clock: i64,
    winner_writer: String,
    kind: String,
    recorded_at: DateTime<Utc>,
}

impl OverrideRow {
    pub fn decode(self, key: &DocumentKey) -> Result<Override, StoreError> {
        let corrupt = |why: String| {
            StoreError::internal(format!("override {} of {key} is corrupt: {why}", self.id))
        };
        let stamp = |clock: i64, writer: &str| -> Result<Stamp, String> {
            let clock = Clock::try_from(clock).map_err(|e| e.to_string())?;
            let writer = WriterId::parse(writer).map_err(|e| e.to_string())?;
            Ok(Stamp::new(clock, writer))
        };
        // One spelling on both stores: PostgreSQL gives jsonb's text form.
        let value = match &self.lost_value {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| corrupt(e.to_string()))?
                    .to_string(),
            ),
        };
        let lost = Lost {
            field: (!self.field.is_empty()).then(|| self.field.clone()),
            value,
            stamp: stamp(self.lost_clock, &self.lost_writer).map_err(corrupt)?,
            winner: stamp(self.winner_clock, &self.winner_writer).map_err(corrupt)?,
            kind: OverrideKind::parse(&self.kind)
                .ok_or_else(|| corrupt(format!("kind {:?}", self.kind)))?,
        };
        Ok(Override {
            id: self.id,
            lost,
            recorded_at: self.recorded_at.into(),
        })
    }
}

/// `before` as the highest id a page may list: i64::MAX for the first.
pub(super) fn before_param(before: Option<i64>) -> i64 {
    before.unwrap_or(i64::MAX)
}

pub(super) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
