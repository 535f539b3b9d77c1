//! Storage of documents behind one trait, with two implementations:
//! PostgreSQL (production, many replicas) and SQLite (embedded, one node).
//!
//! Both run the merge as ONE guarded upsert: the row changes only if the
//! incoming stamp is larger (and within the clock-jump limit). Because the
//! merge is a lattice join, that statement is all the coordination replicas
//! need. When the guard refuses, the stored row is read back and the pure
//! [`merge`] names the decision, so stores and protocol can not disagree.
//!
//! - [`error`]: what a store reports, free of database types.
//! - [`database`]: which store a database URL names.
//! - [`overrides`]: the log of values that lost, as the stores keep it.
//! - [`postgres`], [`sqlite`]: the two adapters; `row` is the document row
//!   and the merge guard in the one SQL spelling both share, `registers`
//!   the per-field stamps stored next to the value.
//!
//! A per-field client's write (opt-in, `docs/protocol.md`): SQLite runs the
//! pure `fields::merge` inside its write transaction; PostgreSQL runs the
//! same rules in one statement, a function its migration installs, so that
//! replicas and write-combining need nothing more than for whole writes.

mod database;
mod error;
mod overrides;
mod postgres;
mod registers;
mod row;
mod sqlite;
mod sqlx_error;

use std::future::Future;
use std::time::SystemTime;

use settings_sync_protocol::fields::{self, FieldDocument, FieldReport, FieldWrite};
use settings_sync_protocol::overrides::{self as losing, Lost};
use settings_sync_protocol::{
    Clock, Decision, Document, DocumentKey, Id, MergeError, MergePolicy, Versioned, merge,
};

pub use database::{Database, UnknownScheme};
pub use error::{Cause, StoreError};
pub use overrides::{Override, OverrideRetention};
pub use postgres::{BatchConfig, BatchCounts, PostgresStore};
pub use sqlite::SqliteStore;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    pub document: Document,
    pub decision: Decision,
}

/// What a per-field client's write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldOutcome {
    /// The stored document after the merge; `None` only when an empty
    /// patch (a read) met a document never written.
    pub document: Option<Document>,
    pub report: FieldReport,
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

/// What the service needs from storage.
pub trait DocumentStore: Send + Sync + 'static {
    /// Merges `write` into the document at `key` atomically.
    fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> impl Future<Output = Result<SyncOutcome, StoreError>> + Send;

    /// Merges a per-field client's write (a patch, or a whole document)
    /// field by field, atomically.
    fn sync_fields(
        &self,
        key: &DocumentKey,
        write: &FieldWrite,
        policy: MergePolicy,
    ) -> impl Future<Output = Result<FieldOutcome, StoreError>> + Send;

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

    /// The overrides recorded for the document at `key`, newest first,
    /// with an id below `before` (all when `None`), at most `limit`.
    fn list_overrides(
        &self,
        key: &DocumentKey,
        before: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Override>, StoreError>> + Send;

    /// Drops overrides recorded before `older_than`, and all but the newest
    /// `max_per_document` of each document; returns how many were dropped.
    fn prune_overrides(
        &self,
        older_than: SystemTime,
        max_per_document: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Cheap round trip to the database, for readiness.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How many times a refused guarded write is re-tried when the row read
/// back says the write should have won. That only happens when the row
/// changed between the two statements; each round the stored stamp grows.
const SETTLE_ATTEMPTS: usize = 5;

/// The two statements a merge needs from a database.
trait GuardedWrite {
    /// Writes `write` only if the guard lets it win over the stored row
    /// (see `row::merge_on_conflict`); the row if it wrote one.
    fn write_if_larger(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> impl Future<Output = Result<Option<Document>, StoreError>> + Send;

    fn read(
        &self,
        key: &DocumentKey,
    ) -> impl Future<Output = Result<Option<Document>, StoreError>> + Send;

    /// Records values of the document at `key` that lost; a record of the
    /// same losing stamp makes one a no-op.
    fn record(
        &self,
        key: &DocumentKey,
        lost: &[Lost],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The whole-document merge of a caller that is not a per-field client:
/// refused on a document that holds a patch, else whole-document mode.
fn merge_whole(
    stored: Option<&Document>,
    write: &Versioned,
    policy: MergePolicy,
) -> Result<Decision, MergeError> {
    if stored.is_some_and(|d| d.fields.is_some()) {
        return Err(MergeError::FieldMerged);
    }
    merge(stored.map(|d| &d.state), write, policy)
}

/// The pure per-field merge of `write` into the document `stored`: the
/// report, and the state to store if the write changes it.
fn merge_fields(
    stored: Option<&Document>,
    write: &FieldWrite,
    policy: MergePolicy,
) -> Result<(FieldReport, Option<FieldDocument>), MergeError> {
    let current = stored.map(Document::field_document).unwrap_or_default();
    let report = fields::merge(&current, write, policy)?;
    let next = current.join_write(write);
    Ok((report, (next != current).then_some(next)))
}

/// Whether a write may create its document: a clock past the jump limit
/// from zero may only update one that exists (the merge would refuse it
/// over no row).
fn may_create(write: &Versioned, policy: MergePolicy) -> bool {
    write.stamp.clock.get() <= policy.clock_ceiling(Clock::ZERO)
}

/// A merge on either database: the guarded write, and when the guard
/// refuses, the row read back and named by the pure merge. A write that
/// arrived stale is recorded in the override log before it is answered
/// (the guarded write records what it overtakes itself).
async fn merge_guarded(
    db: &impl GuardedWrite,
    key: &DocumentKey,
    write: &Versioned,
    policy: MergePolicy,
) -> Result<SyncOutcome, StoreError> {
    for _ in 0..SETTLE_ATTEMPTS {
        if let Some(document) = db.write_if_larger(key, write, policy).await? {
            return Ok(SyncOutcome {
                document,
                decision: Decision::Applied,
            });
        }
        let stored = db.read(key).await?;
        match merge_whole(stored.as_ref(), write, policy)? {
            Decision::Applied => continue,
            decision => {
                // merge() over no row is Applied or an error, so a row is here.
                let Some(document) = stored else { continue };
                if let Some(lost) = losing::whole(Some(&document.state), write, decision) {
                    db.record(key, &[lost]).await?;
                }
                return Ok(SyncOutcome { document, decision });
            }
        }
    }
    Err(StoreError::conflict(format!(
        "merge of {key} did not settle after {SETTLE_ATTEMPTS} rounds of concurrent changes"
    )))
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
