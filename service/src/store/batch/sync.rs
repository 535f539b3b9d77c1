//! Running a batch of Syncs: one statement per round over `unnest` arrays.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use settings_sync_protocol::{Document, DocumentKey, MergePolicy};
use sqlx::PgPool;
use tracing::{Instrument, Span};

use super::Shared;
use super::plan::{Group, Pending, Settled, plan, settle};
use crate::store::row::{Row, jump_param, value_param};
use crate::store::{DocumentStore, SETTLE_ATTEMPTS, StoreError};
use crate::telemetry::db::DbSystem;

/// The batched merge, one candidate write per document, sorted by key.
///
/// `rev` bumps each tenant's counter ONCE, by its number of candidates, in
/// tenant order, and holds the row locked until commit: exactly what the
/// single statement does per write, so each tenant's revisions still
/// commit in order and Watch never skips a late commit. Candidates get
/// consecutive revisions in key order; one the guard refuses leaves its
/// revision unused, as a refused single write does. Every writer, batched
/// or not, locks the tenant row before any document row of that tenant, so
/// document locks are never waited on while holding another tenant's lock.
const MERGE: &str = r#"WITH input AS (
    SELECT tenant COLLATE "C" AS tenant, owner COLLATE "C" AS owner, name COLLATE "C" AS name,
           value, clock, writer COLLATE "C" AS writer, may_create
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bool[])
        AS i(tenant, owner, name, value, clock, writer, may_create)
), counts AS (
    SELECT tenant, count(*) AS n FROM input GROUP BY tenant
), rev AS (
    INSERT INTO tenant_revisions AS t (tenant, revision)
    SELECT tenant, n FROM counts ORDER BY tenant
    ON CONFLICT (tenant) DO UPDATE SET revision = t.revision + EXCLUDED.revision
    RETURNING tenant, revision
), numbered AS (
    SELECT i.*, rev.revision - counts.n
               + row_number() OVER (PARTITION BY i.tenant ORDER BY i.owner, i.name) AS revision
    FROM input i JOIN rev USING (tenant) JOIN counts USING (tenant)
), ins AS (
    INSERT INTO documents AS d (tenant, owner, name, value, clock, writer, revision, updated_at)
    SELECT tenant, owner, name, value::jsonb, clock, writer, revision, $8
    FROM numbered WHERE may_create ORDER BY tenant, owner, name
    ON CONFLICT (tenant, owner, name) DO UPDATE
    SET value = EXCLUDED.value, clock = EXCLUDED.clock, writer = EXCLUDED.writer,
        revision = EXCLUDED.revision, updated_at = EXCLUDED.updated_at
    WHERE (d.clock, d.writer) < (EXCLUDED.clock, EXCLUDED.writer)
      AND EXCLUDED.clock - d.clock <= $9
    RETURNING d.tenant, d.owner, d.name, d.value, d.clock, d.writer, d.revision, d.updated_at
), upd AS (
    UPDATE documents AS d
    SET value = n.value::jsonb, clock = n.clock, writer = n.writer,
        revision = n.revision, updated_at = $8
    FROM numbered n
    WHERE NOT n.may_create
      AND d.tenant = n.tenant AND d.owner = n.owner AND d.name = n.name
      AND (d.clock, d.writer) < (n.clock, n.writer)
      AND n.clock - d.clock <= $9
    RETURNING d.tenant, d.owner, d.name, d.value, d.clock, d.writer, d.revision, d.updated_at
), doc AS (
    SELECT * FROM ins UNION ALL SELECT * FROM upd
), log AS (
    INSERT INTO changes (tenant, revision, owner, name, value, clock, writer, updated_at)
    SELECT tenant, revision, owner, name, value, clock, writer, updated_at FROM doc
)
SELECT tenant, owner, name, value::text AS value, clock, writer, revision, updated_at FROM doc"#;

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
        let groups = plan(jobs, shared.config.rule);
        let span = statement_span(groups.first().map(|g| &g.candidate().span));
        let written = match merge_statement(shared.single.pool(), &groups, policy)
            .instrument(span)
            .await
        {
            Ok(written) => written,
            Err(_) => return alone(shared, groups.into_iter().flat_map(|g| g.jobs)).await,
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
            match shared.single.batch_get(&refused).await {
                Ok(found) => stored.extend(found.into_iter().map(|d| (d.key.clone(), d))),
                Err(_) => {
                    let (lost, kept): (Vec<Group>, Vec<Group>) =
                        groups.into_iter().partition(|g| refused.contains(&g.key));
                    jobs = settle_all(kept, &written, &stored, shared);
                    jobs.extend(lost.into_iter().flat_map(|g| g.jobs));
                    return alone(shared, jobs).await;
                }
            }
        }
        jobs = settle_all(groups, &written, &stored, shared);
    }
    for job in jobs {
        let key = job.key.clone();
        job.answer(Err(StoreError::Unsettled(key)));
    }
}

/// The statement's span, under the RPC of the batch's first write (a span
/// has one parent; the other callers' RPCs show the wait, not the SQL).
fn statement_span(first: Option<&Span>) -> Span {
    match first {
        Some(parent) => {
            parent.in_scope(|| DbSystem::Postgresql.statement("INSERT documents", MERGE))
        }
        None => Span::none(),
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
        retry.extend(settle(group, settled, shared.config.rule));
    }
    retry
}

/// When a batched statement fails, each write runs alone on the
/// single-statement path: every caller then gets its own error (or
/// success), and one bad row can not fail the others.
async fn alone(shared: &Shared, jobs: impl IntoIterator<Item = Pending>) {
    let single = &shared.single;
    futures::future::join_all(jobs.into_iter().map(|job| async move {
        let result = single
            .sync_one(&job.key, &job.write, job.policy)
            .instrument(job.span.clone())
            .await;
        job.answer(result);
    }))
    .await;
}

/// Runs the statement for the candidates of `groups`; returns the rows it
/// wrote, by key.
async fn merge_statement(
    pool: &PgPool,
    groups: &[Group],
    policy: MergePolicy,
) -> Result<HashMap<DocumentKey, Document>, StoreError> {
    let column = |part: fn(&Pending) -> &str| -> Vec<&str> {
        groups.iter().map(|g| part(g.candidate())).collect()
    };
    let values: Vec<Option<String>> = groups
        .iter()
        .map(|g| value_param(&g.candidate().write.value))
        .collect();
    let clocks: Vec<i64> = groups
        .iter()
        .map(|g| i64::from(g.candidate().write.stamp.clock))
        .collect();
    let may_create: Vec<bool> = groups.iter().map(Group::may_create).collect();
    let rows: Vec<Row> = sqlx::query_as(MERGE)
        .bind(column(|p| p.key.tenant.as_str()))
        .bind(column(|p| p.key.owner.as_str()))
        .bind(column(|p| p.key.name.as_str()))
        .bind(values)
        .bind(clocks)
        .bind(column(|p| p.write.stamp.writer.as_str()))
        .bind(may_create)
        .bind(Utc::now())
        .bind(jump_param(policy.max_clock_jump))
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|row| Document::try_from(row).map(|d| (d.key.clone(), d)))
        .collect()
}
