//! SQLite: the embedded default for a single node, one file on disk.
//!
//! SQLite has no `@>`; `Query` scans the tenant's documents of that name in
//! owner order and filters with the protocol crate's `contains`, which
//! follows PostgreSQL's semantics.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use settings_sync_protocol::contains::contains;
use settings_sync_protocol::fields::FieldWrite;
use settings_sync_protocol::{Document, DocumentKey, Id, MergePolicy, Versioned};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use tracing::Instrument;

use super::overrides::{Columns, OverrideRow, before_param, limit_param, list_columns};
use super::row::{
    self, FieldColumns, Row, jump_param, merge_on_conflict, proposed_if, row_columns,
    stored_columns, value_param,
};
use super::{
    DocumentStore, FieldOutcome, GuardedWrite, Override, QueryPage, QuerySpec, StoreError,
    SyncOutcome, may_create, merge_fields, merge_guarded,
};
use crate::telemetry::db::DbSystem;
use settings_sync_protocol::overrides::{self as losing, Lost};

const DB: DbSystem = DbSystem::Sqlite;

/// The guarded merge, as in PostgreSQL. It runs inside a write
/// transaction (SQLite serializes those), which then bumps the tenant's
/// counter and logs the change, so revisions are gap-free and in commit order.
const MERGE: &str = concat!(
    "INSERT INTO documents AS d (",
    stored_columns!(),
    ") SELECT ?1, ?2, ?3, ?4, ?5, ?6,
        COALESCE((SELECT revision FROM tenant_revisions WHERE tenant = ?1), 0) + 1, ?7, NULL",
    proposed_if!("?9", "(?1, ?2, ?3)"),
    merge_on_conflict!("?8"),
    " RETURNING ",
    stored_columns!()
);

/// A per-field merge's result, decided in the same write transaction.
const STORE_FIELDS: &str = concat!(
    "INSERT INTO documents AS d (",
    stored_columns!(),
    ") SELECT ?1, ?2, ?3, ?4, ?5, ?6,
        COALESCE((SELECT revision FROM tenant_revisions WHERE tenant = ?1), 0) + 1, ?7, ?8",
    // Without a WHERE, SQLite would parse ON CONFLICT as a join constraint.
    " WHERE true
      ON CONFLICT (tenant, owner, name) DO UPDATE
      SET value = excluded.value, clock = excluded.clock, writer = excluded.writer,
          revision = excluded.revision, updated_at = excluded.updated_at,
          field_stamps = excluded.field_stamps
      RETURNING ",
    stored_columns!()
);

const LOG_CHANGE: &str = concat!(
    "INSERT INTO changes (",
    stored_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);

const BUMP_REVISION: &str = "
INSERT INTO tenant_revisions (tenant, revision) VALUES (?1, ?2)
ON CONFLICT (tenant) DO UPDATE SET revision = excluded.revision";

const GET: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM documents WHERE tenant = ?1 AND owner = ?2 AND name = ?3"
);

const SCAN: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM documents
     WHERE tenant = ?1 AND name = ?2 AND value IS NOT NULL AND owner > ?3
     ORDER BY owner LIMIT ?4"
);

const CHANGES_AFTER: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM changes WHERE tenant = ?1 AND revision > ?2 ORDER BY revision LIMIT ?3"
);

const RECORD: &str = "INSERT OR IGNORE INTO overrides (tenant, owner, name, field, lost_value,
    lost_clock, lost_writer, winner_clock, winner_writer, kind, recorded_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

const LIST_OVERRIDES: &str = concat!(
    "SELECT ",
    list_columns!(),
    " FROM overrides WHERE tenant = ?1 AND owner = ?2 AND name = ?3 AND id < ?4
     ORDER BY id DESC LIMIT ?5"
);

/// Rows read per round while filtering a `Query` in Rust.
const QUERY_SCAN_BATCH: i64 = 500;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file if missing) the database at `url`, e.g.
    /// `sqlite://data/settings.db`, and migrates it. The directory must
    /// exist: [`super::Database::open_sqlite`] creates it.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// The connection pool, for pool metrics.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl GuardedWrite for SqliteStore {
    async fn write_if_larger(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<Option<Document>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The row this write may overtake; nothing changes it before commit.
        let before: Option<Row> = sqlx::query_as(GET)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .fetch_optional(&mut *tx)
            .instrument(DB.statement("SELECT documents", GET))
            .await?;
        let before = before.map(Document::try_from).transpose()?;
        let row: Option<Row> = sqlx::query_as(MERGE)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(value_param(&write.value))
            .bind(i64::from(write.stamp.clock))
            .bind(write.stamp.writer.as_str())
            .bind(Utc::now())
            .bind(jump_param(policy.max_clock_jump))
            .bind(may_create(write, policy))
            .fetch_optional(&mut *tx)
            .instrument(DB.statement("INSERT documents", MERGE))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let before = before.as_ref().map(|d| &d.state);
        if let Some(lost) = losing::whole(before, write, settings_sync_protocol::Decision::Applied)
        {
            record_in(&mut tx, key, &[lost]).await?;
        }
        log_and_commit(tx, row).await.map(Some)
    }

    async fn read(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        let row: Option<Row> = sqlx::query_as(GET)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .fetch_optional(&self.pool)
            .instrument(DB.statement("SELECT documents", GET))
            .await?;
        row.map(Document::try_from).transpose()
    }

    async fn record(&self, key: &DocumentKey, lost: &[Lost]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        record_in(&mut tx, key, lost).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Records losing values of the document at `key` in `tx`.
async fn record_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key: &DocumentKey,
    lost: &[Lost],
) -> Result<(), StoreError> {
    let now = Utc::now();
    for lost in lost {
        let c = Columns::of(lost);
        sqlx::query(RECORD)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(c.field)
            .bind(c.value)
            .bind(c.lost_clock)
            .bind(c.lost_writer)
            .bind(c.winner_clock)
            .bind(c.winner_writer)
            .bind(c.kind)
            .bind(now)
            .execute(&mut **tx)
            .instrument(DB.statement("INSERT overrides", RECORD))
            .await?;
    }
    Ok(())
}

/// Takes the row's revision for its tenant and logs the change, then
/// commits the write transaction that wrote `row`.
async fn log_and_commit(
    mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
    row: Row,
) -> Result<Document, StoreError> {
    sqlx::query(BUMP_REVISION)
        .bind(&row.tenant)
        .bind(row.revision)
        .execute(&mut *tx)
        .instrument(DB.statement("INSERT tenant_revisions", BUMP_REVISION))
        .await?;
    sqlx::query(LOG_CHANGE)
        .bind(&row.tenant)
        .bind(&row.owner)
        .bind(&row.name)
        .bind(&row.value)
        .bind(row.clock)
        .bind(&row.writer)
        .bind(row.revision)
        .bind(row.updated_at)
        .bind(&row.field_stamps)
        .execute(&mut *tx)
        .instrument(DB.statement("INSERT changes", LOG_CHANGE))
        .await?;
    tx.commit().await?;
    Document::try_from(row)
}

impl DocumentStore for SqliteStore {
    async fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<SyncOutcome, StoreError> {
        merge_guarded(self, key, write, policy).await
    }

    /// Read, the pure merge and the write in one write transaction, which
    /// SQLite serializes: nothing changes the row in between.
    async fn sync_fields(
        &self,
        key: &DocumentKey,
        write: &FieldWrite,
        policy: MergePolicy,
    ) -> Result<FieldOutcome, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<Row> = sqlx::query_as(GET)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .fetch_optional(&mut *tx)
            .instrument(DB.statement("SELECT documents", GET))
            .await?;
        let stored = row.map(Document::try_from).transpose()?;
        let (report, next) = merge_fields(stored.as_ref(), write, policy)?;
        let before = stored
            .as_ref()
            .map(Document::field_document)
            .unwrap_or_default();
        let after = next.clone().unwrap_or_else(|| before.clone());
        let lost = losing::of_field_write(&before, &after, write, &report);
        record_in(&mut tx, key, &lost).await?;
        let Some(next) = next else {
            if !lost.is_empty() {
                tx.commit().await?;
            }
            return Ok(FieldOutcome {
                document: stored,
                report,
            });
        };
        let columns = FieldColumns::of(&next)
            .ok_or_else(|| StoreError::internal("a merge result with nothing written"))?;
        let row: Row = sqlx::query_as(STORE_FIELDS)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(&columns.value)
            .bind(columns.clock)
            .bind(&columns.writer)
            .bind(Utc::now())
            .bind(&columns.field_stamps)
            .fetch_one(&mut *tx)
            .instrument(DB.statement("INSERT documents", STORE_FIELDS))
            .await?;
        let document = Some(log_and_commit(tx, row).await?);
        Ok(FieldOutcome { document, report })
    }

    async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        self.read(key).await
    }

    async fn batch_get(&self, keys: &[DocumentKey]) -> Result<Vec<Document>, StoreError> {
        // Batches are small (the API caps them); one indexed read per key.
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            found.extend(self.get(key).await?);
        }
        Ok(super::in_key_order(keys, found))
    }

    async fn query(&self, spec: &QuerySpec) -> Result<QueryPage, StoreError> {
        let mut after = spec
            .after_owner
            .as_ref()
            .map_or(String::new(), |o| o.to_string());
        let mut matches = Vec::new();
        while matches.len() <= spec.limit {
            let rows: Vec<Row> = sqlx::query_as(SCAN)
                .bind(spec.tenant.as_str())
                .bind(spec.name.as_str())
                .bind(&after)
                .bind(QUERY_SCAN_BATCH)
                .fetch_all(&self.pool)
                .instrument(DB.statement("SELECT documents", SCAN))
                .await?;
            let exhausted = (rows.len() as i64) < QUERY_SCAN_BATCH;
            for row in rows {
                after.clone_from(&row.owner);
                let document = Document::try_from(row)?;
                if contains(&document.state.value.to_json(), &spec.filter) {
                    matches.push(document);
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(QueryPage::from_overfetch(matches, spec.limit))
    }

    async fn changes_after(
        &self,
        tenant: &Id,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        let tx = self.pool.begin().await?;
        row::changes_after(
            tx,
            "SELECT compacted_through FROM tenant_revisions WHERE tenant = ?1",
            CHANGES_AFTER,
            tenant,
            after,
            limit,
        )
        .await
    }

    async fn latest_revision(&self, tenant: &Id) -> Result<i64, StoreError> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM tenant_revisions WHERE tenant = ?1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(revision.unwrap_or(0))
    }

    async fn compact(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let older_than: DateTime<Utc> = older_than.into();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE tenant_revisions SET compacted_through = old.through
             FROM (SELECT tenant, max(revision) AS through FROM changes WHERE updated_at < ?1 GROUP BY tenant) AS old
             WHERE tenant_revisions.tenant = old.tenant AND tenant_revisions.compacted_through < old.through",
        )
        .bind(older_than)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(
            "DELETE FROM changes WHERE revision <=
                (SELECT compacted_through FROM tenant_revisions t WHERE t.tenant = changes.tenant)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    async fn list_overrides(
        &self,
        key: &DocumentKey,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Override>, StoreError> {
        let rows: Vec<OverrideRow> = sqlx::query_as(LIST_OVERRIDES)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(before_param(before))
            .bind(limit_param(limit))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT overrides", LIST_OVERRIDES))
            .await?;
        rows.into_iter().map(|r| r.decode(key)).collect()
    }

    async fn prune_overrides(
        &self,
        older_than: SystemTime,
        max_per_document: usize,
    ) -> Result<u64, StoreError> {
        let older_than: DateTime<Utc> = older_than.into();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let old = sqlx::query("DELETE FROM overrides WHERE recorded_at < ?1")
            .bind(older_than)
            .execute(&mut *tx)
            .await?;
        let over = sqlx::query(
            "DELETE FROM overrides WHERE id IN (SELECT id FROM (
                SELECT id, row_number() OVER (PARTITION BY tenant, owner, name ORDER BY id DESC) AS r
                FROM overrides) WHERE r > ?1)",
        )
        .bind(limit_param(max_per_document))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old.rows_affected() + over.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
