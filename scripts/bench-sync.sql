-- pgbench: the merge statement of service/src/store/postgres.rs (UPSERT),
-- word for word, with its parameters as pgbench variables ($1 :tenant,
-- $2 :owner, $3 :name, $4 :value, $5 :clock, $6 :writer, $7 :now, $8 :jump).
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
WITH rev AS (
                INSERT INTO tenant_revisions AS t (tenant, revision) VALUES (:tenant, 1)
                ON CONFLICT (tenant) DO UPDATE SET revision = t.revision + 1
                RETURNING revision
            ), doc AS (INSERT INTO documents AS d (tenant, owner, name, value, clock, writer, revision, updated_at)
     SELECT :tenant, :owner, :name, :value::jsonb, :clock::bigint, :writer, rev.revision, :now::timestamptz FROM rev
     ON CONFLICT (tenant, owner, name) DO UPDATE
     SET value = EXCLUDED.value, clock = EXCLUDED.clock, writer = EXCLUDED.writer,
         revision = EXCLUDED.revision, updated_at = EXCLUDED.updated_at
     WHERE (d.clock, d.writer) < (EXCLUDED.clock, EXCLUDED.writer)
       AND EXCLUDED.clock - d.clock <= :jump RETURNING tenant, owner, name, value, clock, writer, revision, updated_at
            ), log AS (
                INSERT INTO changes (tenant, revision, owner, name, value, clock, writer, updated_at)
                SELECT tenant, revision, owner, name, value, clock, writer, updated_at FROM doc
            )
            SELECT tenant, owner, name, value::text AS value, clock, writer, revision, updated_at FROM doc;
