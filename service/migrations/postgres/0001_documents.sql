-- One row per document. A NULL value is a tombstone. The stamp is
-- (clock, writer); writer uses the "C" collation so that row comparison is
-- bytewise, exactly as the protocol orders stamps.
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

-- Each tenant's change counter. A write takes the next revision by updating
-- this row, which it holds locked until it commits: revisions of a tenant
-- therefore commit in order, and "every change after R" never skips one that
-- committed late (a sequence would not give that). compacted_through is the
-- newest revision whose change history was dropped.
CREATE TABLE tenant_revisions (
    tenant            text COLLATE "C" PRIMARY KEY,
    revision          bigint NOT NULL,
    compacted_through bigint NOT NULL DEFAULT 0
);

-- The change history Watch replays, written by the same statement as the
-- document, pruned after the retention period.
CREATE TABLE changes (
    tenant     text COLLATE "C" NOT NULL,
    revision   bigint NOT NULL,
    owner      text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    value      jsonb,
    clock      bigint NOT NULL,
    writer     text COLLATE "C" NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, revision)
);
CREATE INDEX changes_by_time ON changes (updated_at);
