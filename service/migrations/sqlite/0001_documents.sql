-- One row per document. A NULL value is a tombstone; values are canonical
-- JSON text. TEXT compares bytewise (BINARY collation), as stamps order.
CREATE TABLE documents (
    tenant     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT,
    clock      INTEGER NOT NULL CHECK (clock >= 0),
    writer     TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, owner, name)
) WITHOUT ROWID;

CREATE INDEX documents_by_name ON documents (tenant, name, owner);

-- Each tenant's change counter; see the PostgreSQL migration.
CREATE TABLE tenant_revisions (
    tenant            TEXT PRIMARY KEY,
    revision          INTEGER NOT NULL,
    compacted_through INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE changes (
    tenant     TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT,
    clock      INTEGER NOT NULL,
    writer     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, revision)
) WITHOUT ROWID;
CREATE INDEX changes_by_time ON changes (updated_at);
