//! SQLite: the embedded default for a single node, one file on disk.
//!
//! SQLite has no `@>`; `Query` scans the tenant's documents of that name in
//! owner order and filters with the protocol crate's `contains`, which
//! follows PostgreSQL's semantics.

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use settings_sync_protocol::contains::contains;
use settings_sync_protocol::{Clock, Document, DocumentKey, MergePolicy, Versioned};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::row::{Row, jump_param, value_param};
use super::{DocumentStore, QueryPage, QuerySpec, StoreError, SyncOutcome, merge_guarded};

macro_rules! columns {
    () => {
        "tenant, owner, name, value, clock, writer, revision, updated_at"
    };
}

/// The same guarded upsert as PostgreSQL's. Writes are serialized by
/// SQLite's write lock, so `MAX(revision) + 1` is gap-free and in commit order.
const UPSERT: &str = "
INSERT INTO documents AS d (tenant, owner, name, value, clock, writer, revision, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(revision), 0) + 1 FROM documents), ?7)
ON CONFLICT (tenant, owner, name) DO UPDATE
SET value = excluded.value, clock = excluded.clock, writer = excluded.writer,
    revision = excluded.revision, updated_at = excluded.updated_at
WHERE (d.clock, d.writer) < (excluded.clock, excluded.writer)
  AND excluded.clock - d.clock <= ?8
RETURNING tenant, owner, name, value, clock, writer, revision, updated_at";

const UPDATE_ONLY: &str = "
UPDATE documents AS d
SET value = ?4, clock = ?5, writer = ?6,
    revision = (SELECT COALESCE(MAX(revision), 0) + 1 FROM documents), updated_at = ?7
WHERE tenant = ?1 AND owner = ?2 AND name = ?3
  AND (d.clock, d.writer) < (?5, ?6)
  AND ?5 - d.clock <= ?8
RETURNING tenant, owner, name, value, clock, writer, revision, updated_at";

/// Rows read per round while filtering a `Query` in Rust.
const QUERY_SCAN_BATCH: i64 = 500;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, e.g.
    /// `sqlite://data/settings.db`, and migrates it.
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
        let statement = if write.stamp.clock.get() <= policy.clock_ceiling(Clock::ZERO) {
            UPSERT
        } else {
            UPDATE_ONLY
        };
        let row: Option<Row> = sqlx::query_as(statement)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(value_param(&write.value))
            .bind(i64::from(write.stamp.clock))
            .bind(write.stamp.writer.as_str())
            .bind(Utc::now())
            .bind(jump_param(policy.max_clock_jump))
            .fetch_optional(&self.pool)
            .await?;
        row.map(Document::try_from).transpose()
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

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
