//! PostgreSQL: the production store, shared by any number of replicas.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use settings_sync_protocol::{Clock, Document, DocumentKey, Id, MergePolicy, Versioned};
use sqlx::postgres::{PgPool, PgPoolOptions};

use tracing::Instrument;

use super::batch::{BatchConfig, BatchCounts, Batches};
use super::row::{Row, jump_param, value_param};
use super::{DocumentStore, QueryPage, QuerySpec, StoreError, SyncOutcome, merge_guarded};
use crate::telemetry::db::DbSystem;

const DB: DbSystem = DbSystem::Postgresql;

macro_rules! columns {
    () => {
        "tenant, owner, name, value::text AS value, clock, writer, revision, updated_at"
    };
}

/// Wraps the statement `doc` that writes the document row: first take the
/// tenant's next revision (locking its counter row until commit, so the
/// tenant's revisions commit in order), then log the change for Watch. One
/// statement, so it is atomic under any number of concurrent replicas.
macro_rules! merge_statement {
    ($doc:literal) => {
        concat!(
            "WITH rev AS (
                INSERT INTO tenant_revisions AS t (tenant, revision) VALUES ($1, 1)
                ON CONFLICT (tenant) DO UPDATE SET revision = t.revision + 1
                RETURNING revision
            ), doc AS (",
            $doc,
            " RETURNING tenant, owner, name, value, clock, writer, revision, updated_at
            ), log AS (
                INSERT INTO changes (tenant, revision, owner, name, value, clock, writer, updated_at)
                SELECT tenant, revision, owner, name, value, clock, writer, updated_at FROM doc
            )
            SELECT tenant, owner, name, value::text AS value, clock, writer, revision, updated_at FROM doc"
        )
    };
}

/// The merge: insert, or overwrite only a row whose stamp is smaller and
/// whose clock the write does not jump too far past.
const UPSERT: &str = merge_statement!(
    "INSERT INTO documents AS d (tenant, owner, name, value, clock, writer, revision, updated_at)
     SELECT $1, $2, $3, $4::jsonb, $5, $6, rev.revision, $7 FROM rev
     ON CONFLICT (tenant, owner, name) DO UPDATE
     SET value = EXCLUDED.value, clock = EXCLUDED.clock, writer = EXCLUDED.writer,
         revision = EXCLUDED.revision, updated_at = EXCLUDED.updated_at
     WHERE (d.clock, d.writer) < (EXCLUDED.clock, EXCLUDED.writer)
       AND EXCLUDED.clock - d.clock <= $8"
);

/// The merge for a write whose clock is beyond the jump limit from zero: it
/// may update an existing document but never create one.
const UPDATE_ONLY: &str = merge_statement!(
    "UPDATE documents AS d
     SET value = $4::jsonb, clock = $5, writer = $6,
         revision = (SELECT revision FROM rev), updated_at = $7
     WHERE tenant = $1 AND owner = $2 AND name = $3
       AND (d.clock, d.writer) < ($5::bigint, $6::text COLLATE \"C\")
       AND $5 - d.clock <= $8"
);

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Write-combining, when on (see [`super::batch`]).
    batch: Option<Arc<Batches>>,
}

impl PostgresStore {
    /// Connects lazily: the server starts and reports NOT_SERVING while the
    /// database is unreachable, and recovers by itself when it returns.
    pub fn connect_lazy(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)
            .map_err(StoreError::Database)?;
        Ok(PostgresStore { pool, batch: None })
    }

    /// Groups concurrent Syncs (and Gets) into one statement per batch.
    /// Starts the grouping tasks, so it must run inside a Tokio runtime.
    /// `max <= 1` leaves the store unbatched.
    pub fn with_batching(self, config: BatchConfig) -> Self {
        if config.max <= 1 {
            return self;
        }
        let single = PostgresStore {
            pool: self.pool.clone(),
            batch: None,
        };
        PostgresStore {
            batch: Some(Arc::new(Batches::start(single, config))),
            ..self
        }
    }

    /// What the batcher did so far; `None` when batching is off.
    pub fn batch_counts(&self) -> Option<BatchCounts> {
        self.batch.as_ref().map(|b| b.counts())
    }

    /// Runs pending migrations. sqlx holds a PostgreSQL advisory lock while
    /// it migrates, so replicas starting together migrate exactly once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<Option<Document>, StoreError> {
        // A write that could not create a document must not try to.
        let (statement, summary) = if write.stamp.clock.get() <= policy.clock_ceiling(Clock::ZERO) {
            (UPSERT, "INSERT documents")
        } else {
            (UPDATE_ONLY, "UPDATE documents")
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
            .instrument(DB.statement(summary, statement))
            .await?;
        row.map(Document::try_from).transpose()
    }

    /// The merge as one guarded statement, without batching.
    pub(super) async fn sync_one(
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
            || self.get_one(key),
        )
        .await
    }

    /// The primary-key read, without batching.
    pub(super) async fn get_one(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM documents WHERE tenant = $1 AND owner = $2 AND name = $3"
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
}

impl DocumentStore for PostgresStore {
    async fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<SyncOutcome, StoreError> {
        match &self.batch {
            Some(batch) => batch.sync(key, write, policy).await,
            None => self.sync_one(key, write, policy).await,
        }
    }

    async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        match &self.batch {
            Some(batch) => batch.get(key).await,
            None => self.get_one(key).await,
        }
    }

    async fn batch_get(&self, keys: &[DocumentKey]) -> Result<Vec<Document>, StoreError> {
        let column = |part: fn(&DocumentKey) -> &str| keys.iter().map(part).collect::<Vec<_>>();
        let sql = concat!("SELECT ", columns!(), " FROM documents
             WHERE (tenant, owner, name) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))");
        let rows: Vec<Row> = sqlx::query_as(sql)
            .bind(column(|k| k.tenant.as_str()))
            .bind(column(|k| k.owner.as_str()))
            .bind(column(|k| k.name.as_str()))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT documents", sql))
            .await?;
        let found = rows
            .into_iter()
            .map(Document::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::in_key_order(keys, found))
    }

    async fn query(&self, spec: &QuerySpec) -> Result<QueryPage, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM documents
             WHERE tenant = $1 AND name = $2 AND value IS NOT NULL AND owner > $3 AND value @> $4::jsonb
             ORDER BY owner LIMIT $5");
        let rows: Vec<Row> = sqlx::query_as(sql)
            .bind(spec.tenant.as_str())
            .bind(spec.name.as_str())
            .bind(spec.after_owner.as_ref().map_or("", |o| o.as_str()))
            .bind(spec.filter.to_string())
            .bind(i64::try_from(spec.limit + 1).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT documents", sql))
            .await?;
        let documents = rows
            .into_iter()
            .map(Document::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QueryPage::from_overfetch(documents, spec.limit))
    }

    async fn changes_after(
        &self,
        tenant: &Id,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        // One snapshot for both reads, so compaction can not slip between them.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let compacted_through: Option<i64> =
            sqlx::query_scalar("SELECT compacted_through FROM tenant_revisions WHERE tenant = $1")
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
            "SELECT tenant, owner, name, value::text AS value, clock, writer, revision, updated_at
             FROM changes WHERE tenant = $1 AND revision > $2 ORDER BY revision LIMIT $3",
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
            sqlx::query_scalar("SELECT revision FROM tenant_revisions WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(revision.unwrap_or(0))
    }

    async fn compact(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let older_than: DateTime<Utc> = older_than.into();
        let result = sqlx::query(
            "WITH old AS (
                SELECT tenant, max(revision) AS through FROM changes WHERE updated_at < $1 GROUP BY tenant
             ), moved AS (
                UPDATE tenant_revisions t SET compacted_through = old.through
                FROM old WHERE t.tenant = old.tenant AND t.compacted_through < old.through
                RETURNING t.tenant, t.compacted_through
             )
             DELETE FROM changes c USING moved m WHERE c.tenant = m.tenant AND c.revision <= m.compacted_through",
        )
        .bind(older_than)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
