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
//! - [`sync`]: the batched merge statement and its rounds.
//!
//! A batch of one runs the single-statement path, so a lone request costs
//! and traces exactly as without batching. Every caller is answered only
//! after the statement that decided its write has committed.

mod plan;
mod queue;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use settings_sync_protocol::{Document, DocumentKey, MergePolicy, Versioned};
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::{DocumentStore, PostgresStore, StoreError, SyncOutcome};
use plan::Pending;
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
    #[doc(hidden)]
    pub rule: PreMerge,
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
            rule: PreMerge::LargestStamp,
        }
    }
}

/// How writes to one document within a batch are pre-merged.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreMerge {
    /// The correct rule: the largest stamp is tried, the others ordered after it.
    LargestStamp,
    /// A planted bug for tests/batching.rs: the last write submitted to
    /// the batch wins, and the others are told they were overtaken.
    PlantedLastSubmittedWins,
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
}

#[derive(Debug, Default)]
struct Counters {
    sync_statements: AtomicU64,
    sync_writes: AtomicU64,
    get_statements: AtomicU64,
    get_reads: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    /// The same pool, unbatched: batches of one, read-backs and fallbacks.
    single: PostgresStore,
    config: BatchConfig,
    counts: Counters,
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
    gets: Option<Queue<GetJob>>,
}

impl Batches {
    /// Starts the grouping tasks; needs a Tokio runtime.
    pub(super) fn start(single: PostgresStore, config: BatchConfig) -> Self {
        let shared = Arc::new(Shared {
            single,
            config,
            counts: Counters::default(),
        });
        let for_syncs = shared.clone();
        let syncs = Queue::spawn(config, move |jobs: Vec<Pending>| {
            let shared = for_syncs.clone();
            async move {
                match <[Pending; 1]>::try_from(jobs) {
                    Ok([job]) => {
                        let result = shared
                            .single
                            .sync_one(&job.key, &job.write, job.policy)
                            .instrument(job.span.clone())
                            .await;
                        job.answer(result);
                    }
                    Err(jobs) => sync::run(shared, jobs).await,
                }
            }
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
            return self.shared.single.sync_one(key, write, policy).await;
        }
        // The batch task answers every job; a dropped sender means it was
        // torn down with the runtime.
        answer
            .await
            .unwrap_or(Err(StoreError::Unsettled(key.clone())))
    }

    pub(super) async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        let Some(gets) = &self.gets else {
            return self.shared.single.get_one(key).await;
        };
        let (reply, answer) = oneshot::channel();
        let job = GetJob {
            key: key.clone(),
            reply,
            span: Span::current(),
        };
        if gets.send(job).is_err() {
            return self.shared.single.get_one(key).await;
        }
        answer
            .await
            .unwrap_or(Err(StoreError::Unsettled(key.clone())))
    }
}

/// One `unnest` read for a batch of Gets; each caller gets its key's row.
async fn run_gets(shared: Arc<Shared>, jobs: Vec<GetJob>) {
    if jobs.len() > 1 {
        let mut keys: Vec<DocumentKey> = jobs.iter().map(|j| j.key.clone()).collect();
        keys.sort();
        keys.dedup();
        let read = shared
            .single
            .batch_get(&keys)
            .instrument(jobs[0].span.clone())
            .await;
        if let Ok(found) = read {
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
    }
    // A batch of one, or a failed batch: each read alone, with its own error.
    let single = &shared.single;
    futures::future::join_all(jobs.into_iter().map(|job| async move {
        let result = single.get_one(&job.key).instrument(job.span).await;
        let _ = job.reply.send(result);
    }))
    .await;
}
