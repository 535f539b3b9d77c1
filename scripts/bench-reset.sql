-- Before every measured phase: the same N documents at clock 0 (so every
-- first write wins), no history, fresh statistics.
TRUNCATE documents, changes, tenant_revisions;
INSERT INTO documents (tenant, owner, name, value, clock, writer, revision, updated_at)
SELECT (d % :tenants)::text, (d / :tenants)::text, 'settings',
       '{"fontSize":14,"theme":"dark"}'::jsonb, 0, 'seed', 0, now()
FROM generate_series(0, :documents - 1) AS d;
INSERT INTO tenant_revisions (tenant, revision)
SELECT t::text, 0 FROM generate_series(0, :tenants - 1) AS t;
VACUUM ANALYZE documents, changes, tenant_revisions;
