//! The pure half of a batched merge: which write of each document the
//! statement tries, and what every caller is told afterwards.
//!
//! Several writes to one document in one batch are pre-merged: the
//! statement sees only the one with the largest stamp (the *candidate*),
//! so it never touches a row twice. Each caller's answer is what the pure
//! `merge` says in a sequential order consistent with the stamps:
//!
//! - candidate applied: it went first; every other write of the batch to
//!   that document comes after it, so is STALE, UNCHANGED or rejected
//!   against the candidate (never APPLIED: its stamp is not larger);
//! - candidate refused: every write is merged against the row read back;
//!   one the pure merge would apply (the row changed since, or a smaller
//!   write fits the clock-jump limit that the candidate broke) goes into
//!   the next round, ordered after everything answered so far.

use std::collections::BTreeMap;

use settings_sync_protocol::{Decision, Document, DocumentKey, MergePolicy};
use tokio::sync::oneshot;
use tracing::Span;

use crate::store::{StoreError, SyncOutcome, merge_whole};

/// How writes to one document within a batch are pre-merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PreMerge {
    /// The rule: the largest stamp is tried, the others ordered after it.
    LargestStamp,
    /// A planted bug, compiled into unit tests only (see `tests.rs`): the
    /// last write submitted wins, and the others are told they were
    /// overtaken.
    #[cfg(test)]
    PlantedLastSubmittedWins,
    /// A planted bug, unit tests only: the rule above, but a write pre-merged
    /// away and answered STALE is not recorded in the override log (the one
    /// override only write-combining produces).
    #[cfg(test)]
    PlantedPreMergedNotRecorded,
}

impl PreMerge {
    /// Index in `jobs` (one document's writes, never empty) of the write
    /// the statement tries.
    fn candidate(self, jobs: &[Pending]) -> usize {
        match self {
            // The first of the largest stamps: an equal stamp later in the
            // batch is then compared with it (UNCHANGED, or rejected for
            // different content).
            PreMerge::LargestStamp => (0..jobs.len())
                .rev()
                .max_by(|&a, &b| jobs[a].write.stamp.cmp(&jobs[b].write.stamp))
                .unwrap_or(0),
            #[cfg(test)]
            PreMerge::PlantedLastSubmittedWins => jobs.len() - 1,
            #[cfg(test)]
            PreMerge::PlantedPreMergedNotRecorded => PreMerge::LargestStamp.candidate(jobs),
        }
    }

    /// Whether a write the pure merge would still apply over the stored
    /// row is told it was overtaken instead of tried again.
    fn overtaken_is_final(self) -> bool {
        match self {
            PreMerge::LargestStamp => false,
            #[cfg(test)]
            PreMerge::PlantedLastSubmittedWins => true,
            #[cfg(test)]
            PreMerge::PlantedPreMergedNotRecorded => false,
        }
    }

    /// Whether the override of a write the statement never tried (one
    /// pre-merged away, answered STALE against the candidate) is recorded.
    pub(super) fn records_pre_merged(self) -> bool {
        match self {
            #[cfg(test)]
            PreMerge::PlantedPreMergedNotRecorded => false,
            _ => true,
        }
    }
}

/// One caller's write, waiting for its answer.
#[derive(Debug)]
pub(super) struct Pending {
    pub key: DocumentKey,
    pub write: settings_sync_protocol::Versioned,
    pub policy: MergePolicy,
    pub reply: oneshot::Sender<Result<SyncOutcome, StoreError>>,
    /// The caller's RPC span, so the statement's span has a parent.
    pub span: Span,
}

impl Pending {
    pub fn answer(self, result: Result<SyncOutcome, StoreError>) {
        // A caller that gave up (its RPC was cancelled) no longer listens.
        let _ = self.reply.send(result);
    }
}

/// The writes of one batch to one document.
#[derive(Debug)]
pub(super) struct Group {
    pub key: DocumentKey,
    pub jobs: Vec<Pending>,
    /// Index in `jobs` of the write the statement tries.
    pub candidate: usize,
}

impl Group {
    pub fn candidate(&self) -> &Pending {
        &self.jobs[self.candidate]
    }
}

/// Groups `jobs` by document, in key order: the statement locks rows in
/// that order, the same global order in every batch, so batches never
/// deadlock on each other.
pub(super) fn plan(jobs: Vec<Pending>, rule: PreMerge) -> Vec<Group> {
    let mut by_key: BTreeMap<DocumentKey, Vec<Pending>> = BTreeMap::new();
    for job in jobs {
        by_key.entry(job.key.clone()).or_default().push(job);
    }
    by_key
        .into_iter()
        .map(|(key, jobs)| {
            let candidate = rule.candidate(&jobs);
            Group {
                key,
                jobs,
                candidate,
            }
        })
        .collect()
}

/// What the statement did to a group's document.
pub(super) enum Settled {
    /// The candidate was written: this is the row.
    Applied(Document),
    /// The guard refused it; this is the row read back afterwards.
    Refused(Option<Document>),
}

/// A caller's answer, decided and not yet sent: the batch first records
/// what arrived stale (`sync::run_rounds`), then answers.
pub(super) struct Decided {
    pub job: Pending,
    pub result: Result<SyncOutcome, StoreError>,
    /// Whether the statement tried this write (false: pre-merged away).
    pub tried: bool,
}

/// Decides the callers of `group`; returns them and the writes for the
/// next round.
pub(super) fn settle(
    group: Group,
    settled: Settled,
    rule: PreMerge,
) -> (Vec<Decided>, Vec<Pending>) {
    let mut retry = Vec::new();
    let mut decided = Vec::new();
    let candidate = group.candidate;
    for (i, job) in group.jobs.into_iter().enumerate() {
        let tried = i == candidate;
        let stored = match &settled {
            Settled::Applied(document) if tried => {
                let document = document.clone();
                decided.push(Decided {
                    job,
                    result: Ok(SyncOutcome {
                        document,
                        decision: Decision::Applied,
                    }),
                    tried,
                });
                continue;
            }
            Settled::Applied(document) => Some(document),
            Settled::Refused(stored) => stored.as_ref(),
        };
        match merge_whole(stored, &job.write, job.policy) {
            Ok(Decision::Applied) => match stored {
                Some(document) if rule.overtaken_is_final() => {
                    let document = document.clone();
                    decided.push(Decided {
                        job,
                        result: Ok(SyncOutcome {
                            document,
                            decision: Decision::Stale,
                        }),
                        tried,
                    });
                }
                _ => retry.push(job),
            },
            Ok(decision) => match stored {
                Some(document) => {
                    let document = document.clone();
                    decided.push(Decided {
                        job,
                        result: Ok(SyncOutcome { document, decision }),
                        tried,
                    });
                }
                // merge() over no row only applies or rejects.
                None => retry.push(job),
            },
            Err(error) => decided.push(Decided {
                job,
                result: Err(error.into()),
                tried,
            }),
        }
    }
    (decided, retry)
}
