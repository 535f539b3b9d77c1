//! The document row in its one spelling for both databases: the columns,
//! the merge guard, and one decoding of what a statement returns.

use chrono::{DateTime, Utc};
use settings_sync_protocol::fields::FieldDocument;
use settings_sync_protocol::{Clock, Document, DocumentKey, Id, Stamp, Value, Versioned, WriterId};

use super::StoreError;
use super::registers;

/// The columns of a stored document, in `documents` and in `changes`.
/// `value`, `clock` and `writer` are what a whole-document reader sees (the
/// merged value under the document's stamp), so Query and the whole-document
/// merge read them alone; `field_stamps` is NULL unless the document holds
/// a patch (see `registers`).
macro_rules! stored_columns {
    () => {
        "tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps"
    };
}

/// The same columns as a [`Row`] decodes them: JSON as text.
macro_rules! row_columns {
    () => {
        "tenant, owner, name, CAST(value AS TEXT) AS value, clock, writer, revision, updated_at, \
         CAST(field_stamps AS TEXT) AS field_stamps"
    };
}

/// Completes `INSERT INTO documents AS d (stored_columns) SELECT …`: the
/// whole-document merge. A proposed row is inserted if new, and otherwise
/// overwrites the stored one only when its stamp is larger, its clock within
/// `$max_jump` (a parameter) of the stored clock, and the stored document
/// holds no patch (that one only a per-field client may write). Both
/// databases run it.
macro_rules! merge_on_conflict {
    ($max_jump:literal) => {
        concat!(
            " ON CONFLICT (tenant, owner, name) DO UPDATE
              SET value = excluded.value, clock = excluded.clock, writer = excluded.writer,
                  revision = excluded.revision, updated_at = excluded.updated_at
              WHERE (d.clock, d.writer) < (excluded.clock, excluded.writer)
                AND d.field_stamps IS NULL
                AND excluded.clock - d.clock <= ",
            $max_jump
        )
    };
}

/// Which proposed rows reach the merge: all when the write may create its
/// document (see [`super::may_create`]), else only those of a stored one.
/// `$may_create` is a bool expression and `$key` the proposed row's key.
macro_rules! proposed_if {
    ($may_create:literal, $key:literal) => {
        concat!(
            " WHERE ",
            $may_create,
            " OR EXISTS (SELECT 1 FROM documents e WHERE (e.tenant, e.owner, e.name) = ",
            $key,
            ")"
        )
    };
}

pub(super) use {merge_on_conflict, proposed_if, row_columns, stored_columns};

/// A document row: tenant, owner, name, value (JSON text or NULL), clock,
/// writer, revision, updated_at, field_stamps (JSON text or NULL).
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
    pub field_stamps: Option<String>,
}

impl TryFrom<Row> for Document {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let key_text = format!("{}/{}/{}", row.tenant, row.owner, row.name);
        let corrupt = |reason: String| {
            StoreError::internal(format!("stored row {key_text} is corrupt: {reason}"))
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
        let state = Versioned {
            value,
            stamp: Stamp::new(clock, writer),
        };
        let fields = match &row.field_stamps {
            None => None,
            Some(text) => {
                let fields = registers::decode(text, &state.value).map_err(corrupt)?;
                if fields.versioned().as_ref() != Some(&state) || !fields.holds_patch() {
                    return Err(corrupt("field_stamps disagree with value and stamp".into()));
                }
                Some(fields)
            }
        };
        Ok(Document {
            key,
            state,
            fields,
            revision: row.revision,
            updated_at: row.updated_at.into(),
        })
    }
}

/// The value as bound into SQL: canonical JSON text, NULL for a tombstone.
pub(super) fn value_param(value: &Value) -> Option<String> {
    (!value.is_tombstone()).then(|| value.canonical())
}

/// The columns a per-field merge's result is stored in: the merged value
/// and the document's stamp as a whole-document reader sees them, and the
/// registers only while they say more than that (`holds_patch`), so a
/// document written whole reads and merges exactly as in whole-document
/// mode. `None` for a document nothing was written to.
pub(super) struct FieldColumns {
    pub value: Option<String>,
    pub clock: i64,
    pub writer: String,
    pub field_stamps: Option<String>,
}

impl FieldColumns {
    pub fn of(document: &FieldDocument) -> Option<Self> {
        let state = document.versioned()?;
        Some(FieldColumns {
            value: value_param(&state.value),
            clock: i64::from(state.stamp.clock),
            writer: state.stamp.writer.to_string(),
            field_stamps: document.holds_patch().then(|| registers::encode(document)),
        })
    }
}

/// The clock-jump limit as a SQL parameter; it is compared with a
/// difference of two non-negative bigints, so capping at i64::MAX is exact.
pub(super) fn jump_param(max_clock_jump: u64) -> i64 {
    i64::try_from(max_clock_jump).unwrap_or(i64::MAX)
}

/// A stored size limit as a bigint parameter (`usize::MAX`: none).
pub(super) fn size_param(max_stored_bytes: usize) -> i64 {
    i64::try_from(max_stored_bytes).unwrap_or(i64::MAX)
}

/// A tenant's changes after revision `after`, at most `limit`, read in
/// `tx`: a read transaction the store opened, so both reads see its one
/// snapshot and compaction can not slip between them. Refused when those
/// changes were compacted away. The statements are the store's spelling
/// of `compacted_through` (binding the tenant) and of the changes (binding
/// the tenant, `after` and the limit).
pub(super) async fn changes_after<DB>(
    mut tx: sqlx::Transaction<'_, DB>,
    compacted_through: &'static str,
    changes: &'static str,
    tenant: &Id,
    after: i64,
    limit: usize,
) -> Result<Vec<Document>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    Row: for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let compacted_through: Option<i64> = sqlx::query_scalar(compacted_through)
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let compacted_through = compacted_through.unwrap_or(0);
    if after < compacted_through {
        return Err(StoreError::Compacted {
            requested: after,
            compacted_through,
        });
    }
    let rows: Vec<Row> = sqlx::query_as(changes)
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.into_iter().map(Document::try_from).collect()
}
