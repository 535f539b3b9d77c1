//! Storage of documents behind one trait, with two implementations:
//! PostgreSQL (production, many replicas) and SQLite (embedded, one node).
//!
//! Both run the merge as ONE guarded upsert: the row changes only if the
//! incoming stamp is larger (and within the clock-jump limit). Because the
//! merge is a lattice join, that statement is all the coordination replicas
//! need. When the guard refuses, the stored row is read back and the pure
//! [`merge`] names the decision, so stores and protocol can not disagree.

mod batch;
mod postgres;
mod row;
mod sqlite;

use std::future::Future;
use std::time::SystemTime;

use settings_sync_protocol::{
    Decision, Document, DocumentKey, Id, MergeError, MergePolicy, Versioned, merge,
};

pub use batch::{BatchConfig, BatchCounts, PreMerge};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    pub document: Document,
    pub decision: Decision,
}

/// `Query`: live documents of one tenant and name whose value contains
/// `filter`, ordered by owner, starting after `after_owner`.
#[derive(Clone, Debug)]
pub struct QuerySpec {
    pub tenant: Id,
    pub name: Id,
    pub filter: serde_json::Value,
    pub after_owner: Option<Id>,
    pub limit: usize,
}

#[derive(Clone, Debug, Default)]
pub struct QueryPage {
    pub documents: Vec<Document>,
    /// Set when more documents may follow: resume after this owner.
    pub next_after_owner: Option<Id>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("stored row for {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("merge of {0} did not settle after concurrent changes")]
    Unsettled(DocumentKey),
    #[error(
        "changes up to revision {compacted_through} were compacted; asked for those after {requested}"
    )]
    Compacted {
        requested: i64,
        compacted_through: i64,
    },
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            StoreError::Unavailable(error)
        } else {
            StoreError::Database(error)
        }
    }
}

/// Errors that mean "the database is not reachable right now", so callers
/// get UNAVAILABLE and retry, and readiness reports it.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08: connection exceptions; 57P01-57P03: the server
        // is shutting down, crashed or not accepting connections yet.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// What the service needs from storage.
pub trait DocumentStore: Send + Sync + 'static {
    /// Merges `write` into the document at `key` atomically.
    fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    fn get(
        &self,
        key: &DocumentKey,
    ) -> impl Future<Output = Result<Option<Document>, StoreError>> + Send;

    /// The documents found, in the order of `keys`.
    fn batch_get(
        &self,
        keys: &[DocumentKey],
    ) -> impl Future<Output = Result<Vec<Document>, StoreError>> + Send;

    fn query(&self, spec: &QuerySpec)
    -> impl Future<Output = Result<QueryPage, StoreError>> + Send;

    /// Changes of one tenant with a revision above `after`, in revision
    /// order, at most `limit`. [`StoreError::Compacted`] if some of them are
    /// no longer kept. Revisions of a tenant commit in order, so a reader
    /// never skips a change that committed late.
    fn changes_after(
        &self,
        tenant: &Id,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Document>, StoreError>> + Send;

    /// The tenant's newest revision (0 before its first write).
    fn latest_revision(&self, tenant: &Id) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Drops change history recorded before `older_than`; returns how many
    /// changes were dropped.
    fn compact(
        &self,
        older_than: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Cheap round trip to the database, for readiness.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How many times a refused guarded write is re-tried when the row read
/// back says the write should have won. That only happens when the row
/// changed between the two statements; each round the stored stamp grows.
const SETTLE_ATTEMPTS: usize = 5;

/// The shared shape of a merge: `apply` runs the guarded upsert and returns
/// the row if it wrote one; `read` reads the row back when it did not.
async fn merge_guarded<A, AF, R, RF>(
    key: &DocumentKey,
    write: &Versioned,
    policy: MergePolicy,
    mut apply: A,
    mut read: R,
) -> Result<SyncOutcome, StoreError>
where
    A: FnMut() -> AF,
    AF: Future<Output = Result<Option<Document>, StoreError>>,
    R: FnMut() -> RF,
    RF: Future<Output = Result<Option<Document>, StoreError>>,
{
    for _ in 0..SETTLE_ATTEMPTS {
        if let Some(document) = apply().await? {
            return Ok(SyncOutcome {
                document,
                decision: Decision::Applied,
            });
        }
        let stored = read().await?;
        match merge(stored.as_ref().map(|d| &d.state), write, policy)? {
            Decision::Applied => continue,
            decision => {
                // merge() over no row is Applied or an error, so a row is here.
                let Some(document) = stored else { continue };
                return Ok(SyncOutcome { document, decision });
            }
        }
    }
    Err(StoreError::Unsettled(key.clone()))
}

/// Orders `found` as `keys` asks, dropping duplicates of a key.
fn in_key_order(keys: &[DocumentKey], found: Vec<Document>) -> Vec<Document> {
    let mut by_key: std::collections::HashMap<DocumentKey, Document> =
        found.into_iter().map(|d| (d.key.clone(), d)).collect();
    keys.iter().filter_map(|k| by_key.remove(k)).collect()
}

impl QueryPage {
    /// Builds a page from up to `limit + 1` documents: the extra one only
    /// tells that another page follows.
    fn from_overfetch(mut documents: Vec<Document>, limit: usize) -> Self {
        let more = documents.len() > limit;
        documents.truncate(limit);
        let next_after_owner = more
            .then(|| documents.last().map(|d| d.key.owner.clone()))
            .flatten();
        QueryPage {
            documents,
            next_after_owner,
        }
    }
}
