//! Write-combining for the PostgreSQL store: concurrent Syncs (and Gets)
//! of one replica are grouped into one statement per batch.
//!
//! Under load the cost of a Sync is not its SQL but its commit and its
//! turn on the tenant's counter row, which every write of a tenant holds
//! until commit (that is what keeps Watch gap-free). A batch pays both once
//! for up to `max` writes.
//!
//! - [`queue`]: the grouping task (window, size, batches in flight).
//! - [`plan`]: the pure pre-merge of writes to one document and the answer
//!   each caller gets.
//! - [`sync`]: the rounds of a batched merge.
//! - [`fields`]: per-field writes, merged in turn by one statement.
//!
//! A batch of one runs the single-statement path, so a lone request costs
//! and traces exactly as without batching. Every caller is answered only
//! after the statement that decided its write has committed. When a
//! combined statement fails, each request runs alone and gets its own
//! answer; that fallback is logged and counted, never silent.

mod fields;
mod plan;
mod queue;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use settings_sync_protocol::fields::FieldWrite;
use settings_sync_protocol::{Document, DocumentKey, MergePolicy, Versioned};
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::sql::Statements;
use crate::store::{FieldOutcome, StoreError, SyncOutcome, merge_guarded};
use crate::telemetry::{error_chain, metrics};
#[cfg(test)]
use fields::FieldAnswers;
use fields::FieldPending;
use plan::{Pending, PreMerge};
use queue::Queue;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// How long a batch waits for more requests while other batches run.
    pub window: Duration,
    /// Most requests in one batch; 1 turns batching off.
    pub max: usize,
    /// Most batches running at once per kind (each holds a connection).
    pub in_flight: usize,
    /// Also group Gets into one `unnest` read.
    pub gets: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            window: Duration::ZERO,
            max: 64,
            // Measured: one batch at a time, the next forming behind it,
            // beat two at 16 and 64 clients for Syncs and Gets alike.
            in_flight: 1,
            gets: true,
        }
    }
}

/// What the batcher did since it started, to show the batched path is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Batched merge statements run (batches of one are not counted).
    pub sync_statements: u64,
    /// Writes those statements carried, retried rounds included.
    pub sync_writes: u64,
    pub get_statements: u64,
    pub get_reads: u64,
    /// Combined statements of per-field writes, and the writes they carried.
    pub field_statements: u64,
    pub field_writes: u64,
    /// Batches of Syncs whose combined statement (or read-back) failed, so
    /// their writes ran one by one.
    pub sync_fallbacks: u64,
    /// Batches of Gets whose combined read failed, so they ran one by one.
    pub get_fallbacks: u64,
    /// Batches of per-field writes whose combined statement failed.
    pub field_fallbacks: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sync_statements: AtomicU64,
    sync_writes: AtomicU64,
    get_statements: AtomicU64,
    get_reads: AtomicU64,
    field_statements: AtomicU64,
    field_writes: AtomicU64,
    sync_fallbacks: AtomicU64,
    get_fallbacks: AtomicU64,
    field_fallbacks: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    sql: Statements,
    rule: PreMerge,
    #[cfg(test)]
    field_answers: FieldAnswers,
    counts: Counters,
}

impl Shared {
    /// Logs and counts a batch that falls back to one statement per request.
    fn fall_back(&self, kind: &'static str, requests: usize, error: &StoreError) {
        tracing::warn!(
            kind,
            requests,
            cause = error.kind(),
            error = %error_chain(error),
            "a combined statement failed; running each request of the batch alone"
        );
        metrics::batch_fallback(kind, error.kind());
        let counter = match kind {
            "sync" => &self.counts.sync_fallbacks,
            "fields" => &self.counts.field_fallbacks,
            _ => &self.counts.get_fallbacks,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct GetJob {
    key: DocumentKey,
    reply: oneshot::Sender<Result<Option<Document>, StoreError>>,
    span: Span,
}

#[derive(Debug)]
pub(super) struct Batches {
    shared: Arc<Shared>,
    syncs: Queue<Pending>,
    fields: Queue<FieldPending>,
    gets: Option<Queue<GetJob>>,
}

impl Batches {
    /// Starts the grouping tasks; needs a Tokio runtime.
    pub(super) fn start(sql: Statements, config: BatchConfig) -> Self {
        Self::start_with_rule(sql, config, PreMerge::LargestStamp)
    }

    fn start_with_rule(sql: Statements, config: BatchConfig, rule: PreMerge) -> Self {
        Self::start_shared(
            Shared {
                sql,
                rule,
                #[cfg(test)]
                field_answers: FieldAnswers::ByWrite,
                counts: Counters::default(),
            },
            config,
        )
    }

    /// With a planted way of handing out per-field answers (`tests.rs`).
    #[cfg(test)]
    fn start_with_field_answers(
        sql: Statements,
        config: BatchConfig,
        answers: FieldAnswers,
    ) -> Self {
        Self::start_shared(
            Shared {
                sql,
                rule: PreMerge::LargestStamp,
                field_answers: answers,
                counts: Counters::default(),
            },
            config,
        )
    }

    fn start_shared(shared: Shared, config: BatchConfig) -> Self {
        let shared = Arc::new(shared);
        let for_syncs = shared.clone();
        let syncs = Queue::spawn(config, move |jobs: Vec<Pending>| {
            let shared = for_syncs.clone();
            async move {
                match <[Pending; 1]>::try_from(jobs) {
                    Ok([job]) => {
                        let result = merge_guarded(&shared.sql, &job.key, &job.write, job.policy)
                            .instrument(job.span.clone())
                            .await;
                        job.answer(result);
                    }
                    Err(jobs) => sync::run(shared, jobs).await,
                }
            }
        });
        let for_fields = shared.clone();
        let fields = Queue::spawn(config, move |jobs: Vec<FieldPending>| {
            fields::run(for_fields.clone(), jobs)
        });
        let for_gets = shared.clone();
        let gets = config.gets.then(|| {
            Queue::spawn(config, move |jobs: Vec<GetJob>| {
                run_gets(for_gets.clone(), jobs)
            })
        });
        Batches {
            shared,
            syncs,
            fields,
            gets,
        }
    }

    pub(super) fn counts(&self) -> BatchCounts {
        let c = &self.shared.counts;
        BatchCounts {
            sync_statements: c.sync_statements.load(Ordering::Relaxed),
            sync_writes: c.sync_writes.load(Ordering::Relaxed),
            get_statements: c.get_statements.load(Ordering::Relaxed),
            get_reads: c.get_reads.load(Ordering::Relaxed),
            field_statements: c.field_statements.load(Ordering::Relaxed),
            field_writes: c.field_writes.load(Ordering::Relaxed),
            sync_fallbacks: c.sync_fallbacks.load(Ordering::Relaxed),
            get_fallbacks: c.get_fallbacks.load(Ordering::Relaxed),
            field_fallbacks: c.field_fallbacks.load(Ordering::Relaxed),
        }
    }

    pub(super) async fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<SyncOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            key: key.clone(),
            write: write.clone(),
            policy,
            reply,
            span: Span::current(),
        };
        if self.syncs.send(job).is_err() {
            return merge_guarded(&self.shared.sql, key, write, policy).await;
        }
        unanswered_if_dropped(answer.await)
    }

    pub(super) async fn sync_fields(
        &self,
        key: &DocumentKey,
        write: &FieldWrite,
        policy: MergePolicy,
    ) -> Result<FieldOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = FieldPending {
            key: key.clone(),
            write: write.clone(),
            policy,
            reply,
            span: Span::current(),
        };
        if self.fields.send(job).is_err() {
            return self.shared.sql.merge_fields(key, write, policy).await;
        }
        unanswered_if_dropped(answer.await)
    }

    pub(super) async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        let Some(gets) = &self.gets else {
            return self.shared.sql.get(key).await;
        };
        let (reply, answer) = oneshot::channel();
        let job = GetJob {
            key: key.clone(),
            reply,
            span: Span::current(),
        };
        if gets.send(job).is_err() {
            return self.shared.sql.get(key).await;
        }
        unanswered_if_dropped(answer.await)
    }
}

/// The batch task answers every job; a reply dropped unanswered means the
/// task ended (the runtime shut down, or it panicked): an internal error,
/// never mistaken for a merge that did not settle.
fn unanswered_if_dropped<T>(
    answer: Result<Result<T, StoreError>, oneshot::error::RecvError>,
) -> Result<T, StoreError> {
    answer.unwrap_or_else(|_| {
        Err(StoreError::internal(
            "the batch task ended without answering this request",
        ))
    })
}

/// One `unnest` read for a batch of Gets; each caller gets its key's row.
async fn run_gets(shared: Arc<Shared>, jobs: Vec<GetJob>) {
    if jobs.len() > 1 {
        let mut keys: Vec<DocumentKey> = jobs.iter().map(|j| j.key.clone()).collect();
        keys.sort();
        keys.dedup();
        let read = shared
            .sql
            .get_many(&keys)
            .instrument(jobs[0].span.clone())
            .await;
        match read {
            Ok(found) => {
                shared.counts.get_statements.fetch_add(1, Ordering::Relaxed);
                let c = &shared.counts.get_reads;
                c.fetch_add(jobs.len() as u64, Ordering::Relaxed);
                let found: HashMap<DocumentKey, Document> =
                    found.into_iter().map(|d| (d.key.clone(), d)).collect();
                for job in jobs {
                    let _ = job.reply.send(Ok(found.get(&job.key).cloned()));
                }
                return;
            }
            Err(error) => shared.fall_back("get", jobs.len(), &error),
        }
    }
    // A batch of one, or a failed batch: each read alone, with its own error.
    let sql = &shared.sql;
    futures::future::join_all(jobs.into_iter().map(|job| async move {
        let result = sql.get(&job.key).instrument(job.span).await;
        let _ = job.reply.send(result);
    }))
    .await;
}
