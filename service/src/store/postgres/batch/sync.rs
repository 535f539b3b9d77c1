//! Running a batch of Syncs: one combined statement per round.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use settings_sync_protocol::{Document, DocumentKey, MergePolicy};
use tracing::{Instrument, Span};

use super::Shared;
use super::plan::{Decided, Group, Pending, Settled, plan, settle};
use crate::store::postgres::sql::Candidate;
use crate::store::{SETTLE_ATTEMPTS, StoreError, merge_guarded};
use settings_sync_protocol::overrides::{self as losing, Lost};

/// Answers every write of `jobs`, a batch of at least two.
pub(super) async fn run(shared: Arc<Shared>, jobs: Vec<Pending>) {
    // The server uses one policy; a batch mixing several runs one
    // statement per policy, since the guard binds it once.
    let mut by_policy: Vec<(MergePolicy, Vec<Pending>)> = Vec::new();
    for job in jobs {
        match by_policy.iter_mut().find(|(p, _)| *p == job.policy) {
            Some((_, list)) => list.push(job),
            None => by_policy.push((job.policy, vec![job])),
        }
    }
    for (policy, jobs) in by_policy {
        run_rounds(&shared, policy, jobs).await;
    }
}

async fn run_rounds(shared: &Shared, policy: MergePolicy, mut jobs: Vec<Pending>) {
    for _ in 0..SETTLE_ATTEMPTS {
        if jobs.is_empty() {
            return;
        }
        let groups = plan(jobs, shared.rule);
        let candidates: Vec<Candidate<'_>> = groups
            .iter()
            .map(|g| Candidate {
                key: &g.key,
                write: &g.candidate().write,
            })
            .collect();
        // The statement's span goes under the RPC of the batch's first
        // write (a span has one parent; the others show the wait).
        let parent = groups
            .first()
            .map_or_else(Span::none, |g| g.candidate().span.clone());
        let result = shared
            .sql
            .merge_many(&candidates, policy)
            .instrument(parent)
            .await;
        drop(candidates);
        let written = match result {
            Ok(written) => written,
            Err(error) => {
                let jobs: Vec<Pending> = groups.into_iter().flat_map(|g| g.jobs).collect();
                shared.fall_back("sync", jobs.len(), &error);
                return alone(shared, jobs).await;
            }
        };
        shared
            .counts
            .sync_statements
            .fetch_add(1, Ordering::Relaxed);
        shared.counts.sync_writes.fetch_add(
            groups.iter().map(|g| g.jobs.len() as u64).sum(),
            Ordering::Relaxed,
        );
        let refused: Vec<DocumentKey> = groups
            .iter()
            .filter(|g| !written.contains_key(&g.key))
            .map(|g| g.key.clone())
            .collect();
        let mut stored = HashMap::new();
        if !refused.is_empty() {
            match shared.sql.get_many(&refused).await {
                Ok(found) => stored.extend(found.into_iter().map(|d| (d.key.clone(), d))),
                Err(error) => {
                    let (lost, kept): (Vec<Group>, Vec<Group>) =
                        groups.into_iter().partition(|g| refused.contains(&g.key));
                    jobs = settle_all(kept, &written, &stored, shared).await;
                    jobs.extend(lost.into_iter().flat_map(|g| g.jobs));
                    shared.fall_back("sync", jobs.len(), &error);
                    return alone(shared, jobs).await;
                }
            }
        }
        jobs = settle_all(groups, &written, &stored, shared).await;
    }
    for job in jobs {
        let key = job.key.clone();
        job.answer(Err(StoreError::conflict(format!(
            "merge of {key} did not settle after {SETTLE_ATTEMPTS} rounds of concurrent changes"
        ))));
    }
}

/// Decides every caller of `groups`, records in one statement what
/// arrived stale, then answers them; returns the writes for the next round.
async fn settle_all(
    groups: Vec<Group>,
    written: &HashMap<DocumentKey, Document>,
    stored: &HashMap<DocumentKey, Document>,
    shared: &Shared,
) -> Vec<Pending> {
    let mut retry = Vec::new();
    let mut decided = Vec::new();
    for group in groups {
        let settled = match written.get(&group.key) {
            Some(document) => Settled::Applied(document.clone()),
            None => Settled::Refused(stored.get(&group.key).cloned()),
        };
        let (answers, again) = settle(group, settled, shared.rule);
        decided.extend(answers);
        retry.extend(again);
    }
    answer_recorded(shared, decided).await;
    retry
}

/// What a decided write lost, if it arrived stale: exactly what the
/// one-at-a-time merge records in the batch's sequential order (a write
/// pre-merged away comes after the candidate, so it arrived stale).
fn stale_of(decided: &Decided, rule: super::PreMerge) -> Option<Lost> {
    if !decided.tried && !rule.records_pre_merged() {
        return None;
    }
    let outcome = decided.result.as_ref().ok()?;
    let stored = &outcome.document.state;
    losing::whole(Some(stored), &decided.job.write, outcome.decision)
        .filter(|_| outcome.decision != settings_sync_protocol::Decision::Applied)
}

/// Records the stale writes of `decided` in one statement, then answers
/// every caller; if that statement fails, the stale ones get its error
/// (they are not acknowledged), the others their answer.
async fn answer_recorded(shared: &Shared, decided: Vec<Decided>) {
    let lost: Vec<(&DocumentKey, Lost)> = decided
        .iter()
        .filter_map(|d| Some((&d.job.key, stale_of(d, shared.rule)?)))
        .collect();
    let recorded = shared.sql.record_many(&lost).await;
    let failed = recorded.is_err() && !lost.is_empty();
    drop(lost);
    for d in decided {
        match &recorded {
            Err(error) if failed && stale_of(&d, shared.rule).is_some() => {
                let message = format!("recording the override failed: {error}");
                d.job.answer(Err(StoreError::internal(message)));
            }
            _ => d.job.answer(d.result),
        }
    }
}

/// When a combined statement fails, each write runs alone on the
/// single-statement path: every caller then gets its own error (or
/// success), and one bad row can not fail the others.
async fn alone(shared: &Shared, jobs: Vec<Pending>) {
    let sql = &shared.sql;
    futures::future::join_all(jobs.into_iter().map(|job| async move {
        let result = merge_guarded(sql, &job.key, &job.write, job.policy)
            .instrument(job.span.clone())
            .await;
        job.answer(result);
    }))
    .await;
}
