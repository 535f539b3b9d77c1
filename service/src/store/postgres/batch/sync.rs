//! Running a batch of Syncs: one combined statement per round.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use settings_sync_protocol::{Document, DocumentKey, MergePolicy};
use tracing::{Instrument, Span};

use super::Shared;
use super::plan::{Group, Pending, Settled, plan, settle};
use crate::store::postgres::sql::Candidate;
use crate::store::{SETTLE_ATTEMPTS, StoreError, merge_guarded};

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
                    jobs = settle_all(kept, &written, &stored, shared);
                    jobs.extend(lost.into_iter().flat_map(|g| g.jobs));
                    shared.fall_back("sync", jobs.len(), &error);
                    return alone(shared, jobs).await;
                }
            }
        }
        jobs = settle_all(groups, &written, &stored, shared);
    }
    for job in jobs {
        let key = job.key.clone();
        job.answer(Err(StoreError::conflict(format!(
            "merge of {key} did not settle after {SETTLE_ATTEMPTS} rounds of concurrent changes"
        ))));
    }
}

fn settle_all(
    groups: Vec<Group>,
    written: &HashMap<DocumentKey, Document>,
    stored: &HashMap<DocumentKey, Document>,
    shared: &Shared,
) -> Vec<Pending> {
    let mut retry = Vec::new();
    for group in groups {
        let settled = match written.get(&group.key) {
            Some(document) => Settled::Applied(document.clone()),
            None => Settled::Refused(stored.get(&group.key).cloned()),
        };
        retry.extend(settle(group, settled, shared.rule));
    }
    retry
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
