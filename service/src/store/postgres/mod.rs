//! PostgreSQL: the production store, shared by any number of replicas.
//!
//! Calls go one way: [`PostgresStore`] hands a request to [`batch`] (when
//! write-combining is on) or straight to [`sql`]; `batch` runs its
//! statements through `sql`; only `sql` issues statements. [`fields`] is
//! how a per-field write is bound to, and answered from, the `merge_fields`
//! function that the migration installs.

mod batch;
mod fields;
mod sql;

use std::sync::Arc;
use std::time::SystemTime;

use settings_sync_protocol::fields::FieldWrite;
use settings_sync_protocol::{Document, DocumentKey, Id, MergePolicy, Versioned};
use sqlx::postgres::PgPool;

use super::{
    DocumentStore, FieldOutcome, Override, QueryPage, QuerySpec, StoreError, SyncOutcome,
    merge_guarded,
};
use batch::Batches;
pub use batch::{BatchConfig, BatchCounts};
use sql::Statements;

#[derive(Clone, Debug)]
pub struct PostgresStore {
    sql: Statements,
    /// Write-combining, when on (see [`batch`]).
    batch: Option<Arc<Batches>>,
}

impl PostgresStore {
    /// Connects lazily: the server starts and reports NOT_SERVING while the
    /// database is unreachable, and recovers by itself when it returns.
    pub fn connect_lazy(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        Ok(PostgresStore {
            sql: Statements::connect_lazy(url, pool_size)?,
            batch: None,
        })
    }

    /// Groups concurrent Syncs (whole-document and per-field apart, and
    /// Gets) into one statement per batch.
    /// Starts the grouping tasks, so it must run inside a Tokio runtime.
    /// `max <= 1` leaves the store unbatched.
    pub fn with_batching(self, config: BatchConfig) -> Self {
        if config.max <= 1 {
            return self;
        }
        PostgresStore {
            batch: Some(Arc::new(Batches::start(self.sql.clone(), config))),
            ..self
        }
    }

    /// What the batcher did so far; `None` when batching is off.
    pub fn batch_counts(&self) -> Option<BatchCounts> {
        self.batch.as_ref().map(|b| b.counts())
    }

    /// Runs pending migrations, once even with many replicas starting.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.sql.migrate().await
    }

    pub fn pool(&self) -> &PgPool {
        self.sql.pool()
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
            None => merge_guarded(&self.sql, key, write, policy).await,
        }
    }

    async fn sync_fields(
        &self,
        key: &DocumentKey,
        write: &FieldWrite,
        policy: MergePolicy,
    ) -> Result<FieldOutcome, StoreError> {
        match &self.batch {
            Some(batch) => batch.sync_fields(key, write, policy).await,
            None => self.sql.merge_fields(key, write, policy).await,
        }
    }

    async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        match &self.batch {
            Some(batch) => batch.get(key).await,
            None => self.sql.get(key).await,
        }
    }

    async fn batch_get(&self, keys: &[DocumentKey]) -> Result<Vec<Document>, StoreError> {
        let found = self.sql.get_many(keys).await?;
        Ok(super::in_key_order(keys, found))
    }

    async fn query(&self, spec: &QuerySpec) -> Result<QueryPage, StoreError> {
        let documents = self.sql.query(spec).await?;
        Ok(QueryPage::from_overfetch(documents, spec.limit))
    }

    async fn changes_after(
        &self,
        tenant: &Id,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        self.sql.changes_after(tenant, after, limit).await
    }

    async fn latest_revision(&self, tenant: &Id) -> Result<i64, StoreError> {
        self.sql.latest_revision(tenant).await
    }

    async fn compact(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        self.sql.compact(older_than).await
    }

    async fn list_overrides(
        &self,
        key: &DocumentKey,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Override>, StoreError> {
        self.sql.list_overrides(key, before, limit).await
    }

    async fn prune_overrides(
        &self,
        older_than: SystemTime,
        max_per_document: usize,
    ) -> Result<u64, StoreError> {
        self.sql.prune_overrides(older_than, max_per_document).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.sql.ping().await
    }
}
