-- pgbench: the service's whole-document merge statement (UPSERT, as
-- service/src/store/row.rs spells it; the span of a Sync shows it in
-- db.query.text), word for word, with its parameters as pgbench variables
-- ($1 :tenant, $2 :owner, $3 :name, $4 :value, $5 :clock, $6 :writer,
-- $7 :now, $8 :jump, $9 true: a write that may create its document).
-- pgbench sends untyped parameters where sqlx sends typed ones, so the two
-- that PostgreSQL can not infer carry the cast of the type sqlx binds
-- (:clock::bigint, :now::timestamptz).
-- Keys and stamps follow the load tool (load/src/workload.rs): document d
-- is tenant d % tenants, owner d / tenants; client c is writer c and its
-- n-th write carries clock n.
\set d random(0, :documents - 1)
\set tenant :d % :tenants
\set owner :d / :tenants
\set clock :clock + 1
\set writer :client_id
WITH rev AS ( INSERT INTO tenant_revisions AS t (tenant, revision) VALUES (:tenant, 1) ON CONFLICT (tenant) DO UPDATE SET revision = t.revision + 1 RETURNING revision ),
doc AS (INSERT INTO documents AS d (tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps)
     SELECT :tenant, :owner, :name, :value::jsonb, :clock::bigint, :writer, rev.revision, :now::timestamptz, NULL::jsonb FROM rev
     WHERE true OR EXISTS (SELECT 1 FROM documents e WHERE (e.tenant, e.owner, e.name) = (:tenant, :owner, :name))
     ON CONFLICT (tenant, owner, name) DO UPDATE
     SET value = excluded.value, clock = excluded.clock, writer = excluded.writer,
         revision = excluded.revision, updated_at = excluded.updated_at
     WHERE (d.clock, d.writer) < (excluded.clock, excluded.writer)
       AND d.field_stamps IS NULL
       AND excluded.clock - d.clock <= :jump
     RETURNING tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps),
log AS (INSERT INTO changes (tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps)
     SELECT tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps FROM doc)
SELECT tenant, owner, name, CAST(value AS TEXT) AS value, clock, writer, revision, updated_at, CAST(field_stamps AS TEXT) AS field_stamps FROM doc;
