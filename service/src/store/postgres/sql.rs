//! Every statement the PostgreSQL store runs. The layers above decide
//! what to run (one write, a batch, a read); only this module talks SQL.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use settings_sync_protocol::{Document, DocumentKey, Id, MergePolicy, Versioned};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tracing::Instrument;

use super::fields::{
    FieldMergeRow, MERGE_FIELDS, MERGE_FIELDS_MANY, NumberedFieldMergeRow, WireWrite,
};
use crate::store::overrides::{Columns, OverrideRow, before_param, limit_param, list_columns};
use crate::store::row::{
    self, Row, jump_param, merge_on_conflict, proposed_if, row_columns, size_param, stored_columns,
    value_param,
};
use crate::store::{FieldOutcome, GuardedWrite, Override, QuerySpec, StoreError, may_create};
use crate::telemetry::db::DbSystem;
use settings_sync_protocol::overrides::{self as losing, Lost};

const DB: DbSystem = DbSystem::Postgresql;

/// Wraps the `doc` CTE that writes document rows: first take the tenants'
/// next revisions in `rev` (locking each counter row until commit, so a
/// tenant's revisions commit in order), then log every written row for
/// Watch. One statement, so it is atomic under any number of replicas.
macro_rules! with_revisions_and_log {
    ($before_doc:expr, $doc:expr) => {
        concat!(
            $before_doc,
            " doc AS (INSERT INTO documents AS d (",
            stored_columns!(),
            ") ",
            $doc,
            " RETURNING ",
            stored_columns!(),
            "), log AS (INSERT INTO changes (",
            stored_columns!(),
            ") SELECT ",
            stored_columns!(),
            " FROM doc) SELECT ",
            row_columns!(),
            " FROM doc"
        )
    };
}

/// Takes the tenant's next revision for a write of one document.
macro_rules! next_revision {
    () => {
        "WITH rev AS (
            INSERT INTO tenant_revisions AS t (tenant, revision) VALUES ($1, 1)
            ON CONFLICT (tenant) DO UPDATE SET revision = t.revision + 1
            RETURNING revision
        ),"
    };
}

/// The merge of one write.
const MERGE_ONE: &str = with_revisions_and_log!(
    next_revision!(),
    concat!(
        "SELECT $1, $2, $3, $4::jsonb, $5, $6, rev.revision, $7, NULL::jsonb FROM rev",
        proposed_if!("$9", "($1, $2, $3)"),
        merge_on_conflict!("$8")
    )
);

/// The merge of a batch: one candidate write per document, sorted by key.
///
/// `rev` bumps each tenant's counter ONCE, by its number of candidates, in
/// tenant order, and holds the row locked until commit: exactly what the
/// single statement does per write, so each tenant's revisions still
/// commit in order and Watch never skips a late commit. Candidates get
/// consecutive revisions in key order; one the guard refuses leaves its
/// revision unused, as a refused single write does. Every writer, batched
/// or not, locks the tenant row before any document row of that tenant,
/// and document rows in key order, so batches never deadlock.
const MERGE_MANY: &str = with_revisions_and_log!(
    r#"WITH input AS (
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
    ),"#,
    concat!(
        "SELECT tenant, owner, name, value::jsonb, clock, writer, revision, $8, NULL::jsonb
         FROM numbered n",
        proposed_if!("n.may_create", "(n.tenant, n.owner, n.name)"),
        " ORDER BY tenant, owner, name",
        merge_on_conflict!("$9")
    )
);

const GET: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM documents WHERE tenant = $1 AND owner = $2 AND name = $3"
);

const GET_MANY: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM documents
     WHERE (tenant, owner, name) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))"
);

const QUERY: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM documents
     WHERE tenant = $1 AND name = $2 AND value IS NOT NULL AND owner > $3 AND value @> $4::jsonb
     ORDER BY owner LIMIT $5"
);

const CHANGES_AFTER: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM changes WHERE tenant = $1 AND revision > $2 ORDER BY revision LIMIT $3"
);

/// Records losing values, any number of documents: a no-op for one whose
/// losing stamp is already recorded (see `store::overrides`).
const RECORD: &str = "INSERT INTO overrides (tenant, owner, name, field, lost_value,
        lost_clock, lost_writer, winner_clock, winner_writer, kind, recorded_at)
    SELECT t, o, n, f, v::jsonb, lc, lw, wc, ww, k, $11
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                $7::text[], $8::bigint[], $9::text[], $10::text[])
        AS i(t, o, n, f, v, lc, lw, wc, ww, k)
    ON CONFLICT DO NOTHING";

const LIST_OVERRIDES: &str = concat!(
    "SELECT ",
    list_columns!(),
    " FROM overrides WHERE tenant = $1 AND owner = $2 AND name = $3 AND id < $4
     ORDER BY id DESC LIMIT $5"
);

/// A write as the statements bind it.
pub(super) struct Candidate<'a> {
    pub key: &'a DocumentKey,
    pub write: &'a Versioned,
}

#[derive(Clone, Debug)]
pub(super) struct Statements {
    pool: PgPool,
}

impl Statements {
    /// Connects lazily: the server starts and reports NOT_SERVING while the
    /// database is unreachable, and recovers by itself when it returns.
    pub fn connect_lazy(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)?;
        Ok(Statements { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// sqlx holds a PostgreSQL advisory lock while it migrates, so replicas
    /// starting together migrate exactly once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Ok(sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?)
    }

    /// The guarded write of one document; the row if it wrote one.
    pub async fn merge_one(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<Option<Document>, StoreError> {
        let row: Option<Row> = sqlx::query_as(MERGE_ONE)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(value_param(&write.value))
            .bind(i64::from(write.stamp.clock))
            .bind(write.stamp.writer.as_str())
            .bind(Utc::now())
            .bind(jump_param(policy.max_clock_jump))
            .bind(may_create(write, policy))
            .fetch_optional(&self.pool)
            .instrument(DB.statement("INSERT documents", MERGE_ONE))
            .await?;
        row.map(Document::try_from).transpose()
    }

    /// The guarded write of several documents, one candidate each, in key
    /// order; the rows it wrote, by key. The caller's span is the parent.
    pub async fn merge_many(
        &self,
        candidates: &[Candidate<'_>],
        policy: MergePolicy,
    ) -> Result<HashMap<DocumentKey, Document>, StoreError> {
        let tenants: Vec<&str> = candidates.iter().map(|c| c.key.tenant.as_str()).collect();
        let owners: Vec<&str> = candidates.iter().map(|c| c.key.owner.as_str()).collect();
        let names: Vec<&str> = candidates.iter().map(|c| c.key.name.as_str()).collect();
        let writers: Vec<&str> = candidates
            .iter()
            .map(|c| c.write.stamp.writer.as_str())
            .collect();
        let values: Vec<Option<String>> = candidates
            .iter()
            .map(|c| value_param(&c.write.value))
            .collect();
        let clocks: Vec<i64> = candidates
            .iter()
            .map(|c| i64::from(c.write.stamp.clock))
            .collect();
        let creates: Vec<bool> = candidates
            .iter()
            .map(|c| may_create(c.write, policy))
            .collect();
        let rows: Vec<Row> = sqlx::query_as(MERGE_MANY)
            .bind(tenants)
            .bind(owners)
            .bind(names)
            .bind(values)
            .bind(clocks)
            .bind(writers)
            .bind(creates)
            .bind(Utc::now())
            .bind(jump_param(policy.max_clock_jump))
            .fetch_all(&self.pool)
            .instrument(DB.statement("INSERT documents", MERGE_MANY))
            .await?;
        rows.into_iter()
            .map(|row| Document::try_from(row).map(|d| (d.key.clone(), d)))
            .collect()
    }

    /// The per-field merge of one write: one statement, the function the
    /// migration installs (see `fields`).
    pub async fn merge_fields(
        &self,
        key: &DocumentKey,
        write: &settings_sync_protocol::fields::FieldWrite,
        policy: MergePolicy,
    ) -> Result<FieldOutcome, StoreError> {
        let bound = WireWrite::of(write);
        let row: FieldMergeRow = sqlx::query_as(MERGE_FIELDS)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(i64::from(write.stamp.clock))
            .bind(write.stamp.writer.as_str())
            .bind(bound.whole)
            .bind(bound.value)
            .bind(bound.sets)
            .bind(bound.deletes)
            .bind(jump_param(policy.max_clock_jump))
            .bind(Utc::now())
            .bind(size_param(policy.max_stored_bytes))
            .fetch_one(&self.pool)
            .instrument(DB.statement("SELECT merge_fields", MERGE_FIELDS))
            .await?;
        let outcome = row.outcome(write, policy)?;
        // What it overtook, the statement recorded; what arrived stale, here.
        self.record_many(&stale_of(key, write, &outcome)).await?;
        Ok(outcome)
    }

    /// Records losing values of any documents in one statement.
    pub async fn record_many(&self, lost: &[(&DocumentKey, Lost)]) -> Result<(), StoreError> {
        if lost.is_empty() {
            return Ok(());
        }
        let columns: Vec<(&DocumentKey, Columns<'_>)> =
            lost.iter().map(|(k, l)| (*k, Columns::of(l))).collect();
        let text = |part: fn(&DocumentKey) -> &str| -> Vec<&str> {
            columns.iter().map(|(k, _)| part(k)).collect()
        };
        sqlx::query(RECORD)
            .bind(text(|k| k.tenant.as_str()))
            .bind(text(|k| k.owner.as_str()))
            .bind(text(|k| k.name.as_str()))
            .bind(columns.iter().map(|(_, c)| c.field).collect::<Vec<_>>())
            .bind(columns.iter().map(|(_, c)| c.value).collect::<Vec<_>>())
            .bind(
                columns
                    .iter()
                    .map(|(_, c)| c.lost_clock)
                    .collect::<Vec<_>>(),
            )
            .bind(
                columns
                    .iter()
                    .map(|(_, c)| c.lost_writer)
                    .collect::<Vec<_>>(),
            )
            .bind(
                columns
                    .iter()
                    .map(|(_, c)| c.winner_clock)
                    .collect::<Vec<_>>(),
            )
            .bind(
                columns
                    .iter()
                    .map(|(_, c)| c.winner_writer)
                    .collect::<Vec<_>>(),
            )
            .bind(columns.iter().map(|(_, c)| c.kind).collect::<Vec<_>>())
            .bind(Utc::now())
            .execute(&self.pool)
            .instrument(DB.statement("INSERT overrides", RECORD))
            .await?;
        Ok(())
    }

    pub async fn list_overrides(
        &self,
        key: &DocumentKey,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Override>, StoreError> {
        let rows: Vec<OverrideRow> = sqlx::query_as(LIST_OVERRIDES)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .bind(before_param(before))
            .bind(limit_param(limit))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT overrides", LIST_OVERRIDES))
            .await?;
        rows.into_iter().map(|r| r.decode(key)).collect()
    }

    pub async fn prune_overrides(
        &self,
        older_than: SystemTime,
        max_per_document: usize,
    ) -> Result<u64, StoreError> {
        let older_than: DateTime<Utc> = older_than.into();
        let result = sqlx::query(
            "DELETE FROM overrides WHERE recorded_at < $1 OR id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY tenant, owner, name ORDER BY id DESC) AS r
                    FROM overrides) x
                WHERE r > $2)",
        )
        .bind(older_than)
        .bind(limit_param(max_per_document))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// The per-field merge of several writes in one statement: each merged
    /// in key order, writes to one document in the order given. One answer
    /// per write, in the order of `writes`; the caller's span is the parent.
    pub async fn merge_fields_many(
        &self,
        writes: &[(&DocumentKey, &settings_sync_protocol::fields::FieldWrite)],
        policy: MergePolicy,
    ) -> Result<Vec<Result<FieldOutcome, StoreError>>, StoreError> {
        let text = |part: fn(&DocumentKey) -> &str| -> Vec<&str> {
            writes.iter().map(|(k, _)| part(k)).collect()
        };
        let bound: Vec<WireWrite> = writes.iter().map(|(_, w)| WireWrite::of(w)).collect();
        let deletes: Vec<String> = (bound.iter())
            .map(|b| serde_json::Value::from(b.deletes.clone()).to_string())
            .collect();
        let rows: Vec<NumberedFieldMergeRow> = sqlx::query_as(MERGE_FIELDS_MANY)
            .bind(text(|k| k.tenant.as_str()))
            .bind(text(|k| k.owner.as_str()))
            .bind(text(|k| k.name.as_str()))
            .bind(
                writes
                    .iter()
                    .map(|(_, w)| i64::from(w.stamp.clock))
                    .collect::<Vec<_>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|(_, w)| w.stamp.writer.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(bound.iter().map(|b| b.whole).collect::<Vec<_>>())
            .bind(bound.iter().map(|b| b.value.clone()).collect::<Vec<_>>())
            .bind(bound.iter().map(|b| b.sets.clone()).collect::<Vec<_>>())
            .bind(deletes)
            .bind(jump_param(policy.max_clock_jump))
            .bind(Utc::now())
            .bind(size_param(policy.max_stored_bytes))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT merge_fields_many", MERGE_FIELDS_MANY))
            .await?;
        let mut answers: Vec<Option<FieldMergeRow>> = writes.iter().map(|_| None).collect();
        for numbered in rows {
            let slot = usize::try_from(numbered.ord - 1).ok();
            let slot = slot.and_then(|i| answers.get_mut(i));
            let slot =
                slot.ok_or_else(|| StoreError::internal("merge_fields_many: a stray row"))?;
            *slot = Some(numbered.row);
        }
        (answers.into_iter().zip(writes))
            .map(|(row, (_, write))| {
                let row =
                    row.ok_or_else(|| StoreError::internal("merge_fields_many: a lost write"))?;
                Ok(row.outcome(write, policy))
            })
            .collect()
    }

    pub async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        let row: Option<Row> = sqlx::query_as(GET)
            .bind(key.tenant.as_str())
            .bind(key.owner.as_str())
            .bind(key.name.as_str())
            .fetch_optional(&self.pool)
            .instrument(DB.statement("SELECT documents", GET))
            .await?;
        row.map(Document::try_from).transpose()
    }

    /// The documents found among `keys`, in no particular order.
    pub async fn get_many(&self, keys: &[DocumentKey]) -> Result<Vec<Document>, StoreError> {
        let text = |part: fn(&DocumentKey) -> &str| keys.iter().map(part).collect::<Vec<_>>();
        let rows: Vec<Row> = sqlx::query_as(GET_MANY)
            .bind(text(|k| k.tenant.as_str()))
            .bind(text(|k| k.owner.as_str()))
            .bind(text(|k| k.name.as_str()))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT documents", GET_MANY))
            .await?;
        rows.into_iter().map(Document::try_from).collect()
    }

    /// Up to `spec.limit + 1` matches (the extra one tells a page follows).
    pub async fn query(&self, spec: &QuerySpec) -> Result<Vec<Document>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(QUERY)
            .bind(spec.tenant.as_str())
            .bind(spec.name.as_str())
            .bind(spec.after_owner.as_ref().map_or("", |o| o.as_str()))
            .bind(spec.filter.to_string())
            .bind(i64::try_from(spec.limit + 1).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .instrument(DB.statement("SELECT documents", QUERY))
            .await?;
        rows.into_iter().map(Document::try_from).collect()
    }

    pub async fn changes_after(
        &self,
        tenant: &Id,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        row::changes_after(
            tx,
            "SELECT compacted_through FROM tenant_revisions WHERE tenant = $1",
            CHANGES_AFTER,
            tenant,
            after,
            limit,
        )
        .await
    }

    pub async fn latest_revision(&self, tenant: &Id) -> Result<i64, StoreError> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM tenant_revisions WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(revision.unwrap_or(0))
    }

    pub async fn compact(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let older_than: DateTime<Utc> = older_than.into();
        let result = sqlx::query(
            "WITH old AS (
                SELECT tenant, max(revision) AS through FROM changes WHERE updated_at < $1 GROUP BY tenant
             ), moved AS (
                UPDATE tenant_revisions t SET compacted_through = old.through
                FROM old WHERE t.tenant = old.tenant AND t.compacted_through < old.through
                RETURNING t.tenant, t.compacted_through
             )
             DELETE FROM changes c USING moved m WHERE c.tenant = m.tenant AND c.revision <= m.compacted_through",
        )
        .bind(older_than)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl GuardedWrite for Statements {
    async fn write_if_larger(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<Option<Document>, StoreError> {
        self.merge_one(key, write, policy).await
    }

    async fn read(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        self.get(key).await
    }

    async fn record(&self, key: &DocumentKey, lost: &[Lost]) -> Result<(), StoreError> {
        let lost: Vec<(&DocumentKey, Lost)> = lost.iter().map(|l| (key, l.clone())).collect();
        self.record_many(&lost).await
    }
}

/// What of a per-field write arrived stale, by the document it was merged
/// into (a stale field is the same before and after).
pub(super) fn stale_of<'k>(
    key: &'k DocumentKey,
    write: &settings_sync_protocol::fields::FieldWrite,
    outcome: &FieldOutcome,
) -> Vec<(&'k DocumentKey, Lost)> {
    let stored = (outcome.document.as_ref())
        .map(Document::field_document)
        .unwrap_or_default();
    losing::arrived_stale(&stored, write, &outcome.report)
        .into_iter()
        .map(|l| (key, l))
        .collect()
}
