//! Running a batch of per-field writes: one `merge_fields_many` statement
//! per merge policy. No pre-merge is needed: the statement merges every
//! write in turn (key order, then the order of the batch), so each caller
//! gets what the pure merge says in that sequential order.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use settings_sync_protocol::DocumentKey;
use settings_sync_protocol::MergePolicy;
use settings_sync_protocol::fields::FieldWrite;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::Shared;
use crate::store::postgres::sql::stale_of;
use crate::store::{FieldOutcome, StoreError};

/// One caller's per-field write, waiting for its answer.
#[derive(Debug)]
pub(super) struct FieldPending {
    pub key: DocumentKey,
    pub write: FieldWrite,
    pub policy: MergePolicy,
    pub reply: oneshot::Sender<Result<FieldOutcome, StoreError>>,
    pub span: Span,
}

impl FieldPending {
    fn answer(self, result: Result<FieldOutcome, StoreError>) {
        // A caller that gave up (its RPC was cancelled) no longer listens.
        let _ = self.reply.send(result);
    }
}

/// How a combined statement's answers reach the callers, in unit tests
/// (`tests.rs`), where a planted bug may hand them out wrongly.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FieldAnswers {
    /// Each caller the answer to its own write, as always outside tests.
    ByWrite,
    /// The planted bug: the answers to the first document's writes of a
    /// batch handed out in reverse.
    PlantedReversed,
}

/// Answers every write of `jobs`. The server uses one policy; a batch
/// mixing several runs one statement per policy, since it binds one.
pub(super) async fn run(shared: Arc<Shared>, jobs: Vec<FieldPending>) {
    let mut by_policy: Vec<(MergePolicy, Vec<FieldPending>)> = Vec::new();
    for job in jobs {
        match by_policy.iter_mut().find(|(p, _)| *p == job.policy) {
            Some((_, list)) => list.push(job),
            None => by_policy.push((job.policy, vec![job])),
        }
    }
    for (policy, jobs) in by_policy {
        run_one_statement(&shared, policy, jobs).await;
    }
}

async fn run_one_statement(shared: &Shared, policy: MergePolicy, jobs: Vec<FieldPending>) {
    if jobs.len() == 1 {
        return alone(shared, jobs).await;
    }
    let writes: Vec<(&DocumentKey, &FieldWrite)> =
        jobs.iter().map(|j| (&j.key, &j.write)).collect();
    let parent = jobs[0].span.clone();
    let result = shared
        .sql
        .merge_fields_many(&writes, policy)
        .instrument(parent)
        .await;
    drop(writes);
    let answers = match result {
        Ok(answers) => answers,
        Err(error) => {
            shared.fall_back("fields", jobs.len(), &error);
            return alone(shared, jobs).await;
        }
    };
    let c = &shared.counts;
    c.field_statements.fetch_add(1, Ordering::Relaxed);
    c.field_writes
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    #[cfg(test)]
    let answers = match shared.field_answers {
        FieldAnswers::ByWrite => answers,
        FieldAnswers::PlantedReversed => planted_reversed(&jobs, answers),
    };
    // What overtook something, the statement recorded (the trigger); what
    // arrived stale is recorded here in one statement before any answer.
    let lost: Vec<_> = (jobs.iter().zip(&answers))
        .filter_map(|(job, answer)| Some(stale_of(&job.key, &job.write, answer.as_ref().ok()?)))
        .flatten()
        .collect();
    let recorded = shared.sql.record_many(&lost).await;
    let stale_keys: Vec<(DocumentKey, settings_sync_protocol::Stamp)> = (lost.iter())
        .map(|(k, l)| ((*k).clone(), l.stamp.clone()))
        .collect();
    drop(lost);
    for (job, answer) in jobs.into_iter().zip(answers) {
        match &recorded {
            Err(error) if stale_keys.contains(&(job.key.clone(), job.write.stamp.clone())) => {
                let message = format!("recording the override failed: {error}");
                job.answer(Err(StoreError::internal(message)));
            }
            _ => job.answer(answer),
        }
    }
}

#[cfg(test)]
fn planted_reversed(
    jobs: &[FieldPending],
    mut answers: Vec<Result<FieldOutcome, StoreError>>,
) -> Vec<Result<FieldOutcome, StoreError>> {
    let first = jobs.first().map(|j| &j.key);
    let same: Vec<usize> = (0..jobs.len())
        .filter(|&i| Some(&jobs[i].key) == first)
        .collect();
    for k in 0..same.len() / 2 {
        answers.swap(same[k], same[same.len() - 1 - k]);
    }
    answers
}

/// A batch of one, or a failed batch: each write alone, with its own answer.
async fn alone(shared: &Shared, jobs: Vec<FieldPending>) {
    let sql = &shared.sql;
    futures::future::join_all(jobs.into_iter().map(|job| async move {
        let result = sql
            .merge_fields(&job.key, &job.write, job.policy)
            .instrument(job.span.clone())
            .await;
        job.answer(result);
    }))
    .await;
}
