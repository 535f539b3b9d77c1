-- One row per document. A NULL value is a tombstone. The stamp is
-- (clock, writer); writer uses the "C" collation so that row comparison is
-- bytewise, exactly as the protocol orders stamps.
CREATE SEQUENCE document_revisions AS bigint;

CREATE TABLE documents (
    tenant     text COLLATE "C" NOT NULL,
    owner      text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    value      jsonb,
    clock      bigint NOT NULL CHECK (clock >= 0),
    writer     text COLLATE "C" NOT NULL,
    revision   bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, owner, name)
);

-- Query: live documents of one tenant and name, paged by owner, filtered by @>.
CREATE INDEX documents_by_name ON documents (tenant, name, owner) WHERE value IS NOT NULL;
CREATE INDEX documents_value ON documents USING gin (value jsonb_path_ops);
CREATE INDEX documents_by_revision ON documents (revision);
