-- The override log; see the PostgreSQL migration. SQLite records in Rust,
-- inside the write transaction of the merge (src/store/sqlite.rs).
CREATE TABLE overrides (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    field         TEXT NOT NULL,
    lost_value    TEXT,
    lost_clock    INTEGER NOT NULL,
    lost_writer   TEXT NOT NULL,
    winner_clock  INTEGER NOT NULL,
    winner_writer TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('stale', 'overtaken')),
    recorded_at   TEXT NOT NULL,
    UNIQUE (tenant, owner, name, field, lost_clock, lost_writer)
);
CREATE INDEX overrides_by_document ON overrides (tenant, owner, name, id);
CREATE INDEX overrides_by_time ON overrides (recorded_at);
