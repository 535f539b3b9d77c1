-- pgbench: the primary-key read of service/src/store/postgres/sql.rs (GET),
-- word for word ($1 :tenant, $2 :owner, $3 :name), over the same keys as
-- the load tool (load/src/workload.rs).
\set d random(0, :documents - 1)
\set tenant :d % :tenants
\set owner :d / :tenants
SELECT tenant, owner, name, CAST(value AS TEXT) AS value, clock, writer, revision, updated_at, CAST(field_stamps AS TEXT) AS field_stamps FROM documents WHERE tenant = :tenant AND owner = :owner AND name = :name;
