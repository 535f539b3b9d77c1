//! SQLite: the embedded default for a single node, one file on disk.
//!
//! SQLite has no `@>`; `Query` scans the tenant's documents of that name in
//! owner order and filters with the protocol crate's `contains`, which
//! follows PostgreSQL's semantics.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use settings_sync_protocol::contains::contains;
use settings_sync_protocol::{Clock, Document, DocumentKey, Id, MergePolicy, Versioned};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use tracing::Instrument;

use super::row::{Row, jump_param, value_param};
use super::{DocumentStore, QueryPage, QuerySpec, StoreError, SyncOutcome, merge_guarded};
use crate::telemetry::db::DbSystem;

const DB: DbSystem = DbSystem::Sqlite;

macro_rules! columns {
    () => {
        "tenant, owner, name, value, clock, writer, revision, updated_at"
    };
}

/// The guarded upsert, as in PostgreSQL. It runs inside a write
/// transaction (SQLite serializes those), which then bumps the tenant's
/// counter and logs the change, so revisions are gap-free and in commit order.
const UPSERT: &str = "
INSERT INTO documents AS d (tenant, owner, name, value, clock, writer, revision, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6,
        COALESCE((SELECT revision FROM tenant_revisions WHERE tenant = ?1), 0) + 1, ?7)
ON CONFLICT (tenant, owner, name) DO UPDATE
SET value = excluded.value, clock = excluded.clock, writer = excluded.writer,
    revision = excluded.revision, updated_at = excluded.updated_at
WHERE (d.clock, d.writer) < (excluded.clock, excluded.writer)
  AND excluded.clock - d.clock <= ?8
RETURNING tenant, owner, name, value, clock, writer, revision, updated_at";

const UPDATE_ONLY: &str = "
UPDATE documents AS d
SET value = ?4, clock = ?5, writer = ?6, updated_at = ?7,
    revision = COALESCE((SELECT revision FROM tenant_revisions WHERE tenant = ?1), 0) + 1
WHERE tenant = ?1 AND owner = ?2 AND name = ?3
  AND (d.clock, d.writer) < (?5, ?6)
  AND ?5 - d.clock <= ?8
RETURNING tenant, owner, name, value, clock, writer, revision, updated_at";

const LOG_CHANGE: &str = "
INSERT INTO changes (tenant, revision, owner, name, value, clock, writer, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const BUMP_REVISION: &str = "
INSERT INTO tenant_revisions (tenant, revision) VALUES (?1, ?2)
ON CONFLICT (tenant) DO UPDATE SET revision = excluded.revision";

/// Rows read per round while filtering a `Query` in Rust.
const QUERY_SCAN_BATCH: i64 = 500;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, e.g.
    /// `sqlite://data/settings.db`, and migrates it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .connect_with(options)
            .await?;
        let store = SqliteStore { pool };
        sqlx::migrate!("./migrations/sqlite")
            .run(&store.pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(store)
    }

    async fn apply(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<Option<Document>, StoreError> {
        let (statement, summary) = if write.stamp.clock.get() <= policy.clock_ceiling(Clock::ZERO) {
            (UPSERT, "INSERT documents")
        } else {
            (UPDATE_ONLY, "UPDATE documents")
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<Row> = sqlx::query_as(statement)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(value_param(&write.value))
            .bind(i64::from(write.stamp.clock))
            .bind(write.stamp.writer.as_str())
            .bind(Utc::now())
            .bind(jump_param(policy.max_clock_jump))
            .fetch_optional(&mut *tx)
            .instrument(DB.statement(summary, statement))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query(BUMP_REVISION)
            .bind(&row.tenant)
            .bind(row.revision)
            .execute(&mut *tx)
            .instrument(DB.statement("INSERT tenant_revisions", BUMP_REVISION))
            .await?;
        sqlx::query(LOG_CHANGE)
            .bind(&row.tenant)
            .bind(row.revision)
            .bind(&row.owner)
            .bind(&row.name)
            .bind(&row.value)
            .bind(row.clock)
            .bind(&row.writer)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .instrument(DB.statement("INSERT changes", LOG_CHANGE))
            .await?;
        tx.commit().await?;
        Document::try_from(row).map(Some)
    }
}

impl DocumentStore for SqliteStore {
    async fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<SyncOutcome, StoreError> {
        merge_guarded(
            key,
            write,
            policy,
            || self.apply(key, write, policy),
            || self.get(key),
        )
        .await
    }

    async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM documents WHERE tenant = ?1 AND owner = ?2 AND name = ?3"
        );
        let row: Option<Row> = sqlx::query_as(sql)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .fetch_optional(&self.pool)
            .instrument(DB.statement("SELECT documents", sql))
            .await?;
        row.map(Document::try_from).transpose()
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
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM documents
             WHERE tenant = ?1 AND name = ?2 AND value IS NOT NULL AND owner > ?3
             ORDER BY owner LIMIT ?4"
        );
        let mut after = spec
            .after_owner
            .as_ref()
            .map_or(String::new(), |o| o.to_string());
        let mut matches = Vec::new();
        while matches.len() <= spec.limit {
            let rows: Vec<Row> = sqlx::query_as(sql)
                .bind(spec.tenant.as_str())
                .bind(spec.name.as_str())
                .bind(&after)
                .bind(QUERY_SCAN_BATCH)
                .fetch_all(&self.pool)
                .instrument(DB.statement("SELECT documents", sql))
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
        // A read transaction: both reads see one snapshot.
        let mut tx = self.pool.begin().await?;
        let compacted_through: Option<i64> =
            sqlx::query_scalar("SELECT compacted_through FROM tenant_revisions WHERE tenant = ?1")
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
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT tenant, owner, name, value, clock, writer, revision, updated_at
             FROM changes WHERE tenant = ?1 AND revision > ?2 ORDER BY revision LIMIT ?3",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Document::try_from).collect()
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

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
