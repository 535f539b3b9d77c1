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
CREATE UNIQUE INDEX documents_by_revision ON documents (revision);
