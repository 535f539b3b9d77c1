-- The override log (docs/protocol.md, "Overrides"): every acknowledged
-- value that lost, what it lost to, when and how. `field` is '' for a
-- whole document (a field name is never empty), else the top-level field;
-- lost_value NULL: a delete (or a field a whole write left absent).
-- A losing stamp never wins later, so (document, field, losing stamp)
-- identifies a record: a replayed write that lost again adds nothing.
CREATE TABLE overrides (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    tenant        text COLLATE "C" NOT NULL,
    owner         text COLLATE "C" NOT NULL,
    name          text COLLATE "C" NOT NULL,
    field         text COLLATE "C" NOT NULL,
    lost_value    jsonb,
    lost_clock    bigint NOT NULL,
    lost_writer   text COLLATE "C" NOT NULL,
    winner_clock  bigint NOT NULL,
    winner_writer text COLLATE "C" NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('stale', 'overtaken')),
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant, owner, name, field, lost_clock, lost_writer)
);
CREATE INDEX overrides_by_document ON overrides (tenant, owner, name, id);
CREATE INDEX overrides_by_time ON overrides (recorded_at);

-- Overtaken values are recorded by the statement that overtakes them: a
-- trigger on every update of a document row, so the single merge, the
-- combined (write-combining) merge and merge_fields(_many) all record in
-- the same statement, atomically, and none can forget. The rule is
-- protocol/src/overrides.rs `overtaken`: whole while neither row holds a
-- patch, else every listed register of the old row whose field now has a
-- larger stamp (its own entry's, else the new floor's).
CREATE FUNCTION record_overtaken() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.field_stamps IS NULL AND NEW.field_stamps IS NULL THEN
        IF stamp_cmp(NEW.clock, NEW.writer, OLD.clock, OLD.writer) > 0 THEN
            INSERT INTO overrides (tenant, owner, name, field, lost_value, lost_clock,
                lost_writer, winner_clock, winner_writer, kind, recorded_at)
            VALUES (NEW.tenant, NEW.owner, NEW.name, '', OLD.value, OLD.clock, OLD.writer,
                NEW.clock, NEW.writer, 'overtaken', NEW.updated_at)
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO overrides (tenant, owner, name, field, lost_value, lost_clock,
        lost_writer, winner_clock, winner_writer, kind, recorded_at)
    SELECT NEW.tenant, NEW.owner, NEW.name, o.field, o.v, o.c, o.w, n.c, n.w,
        'overtaken', NEW.updated_at
    FROM (
        SELECT j.key AS field, j.value AS v, OLD.clock AS c, OLD.writer AS w
        FROM jsonb_each(coalesce(OLD.value, '{}')) j WHERE OLD.field_stamps IS NULL
        UNION ALL
        SELECT j.key, OLD.value -> j.key, (j.value->>0)::bigint, j.value->>1
        FROM jsonb_each(OLD.field_stamps->'fields') j WHERE OLD.field_stamps IS NOT NULL
    ) o
    CROSS JOIN LATERAL (
        SELECT CASE WHEN NEW.field_stamps IS NULL THEN NEW.clock
                    WHEN NEW.field_stamps->'fields' ? o.field
                        THEN (NEW.field_stamps->'fields'->o.field->>0)::bigint
                    ELSE (NEW.field_stamps->'floor'->>0)::bigint END AS c,
               CASE WHEN NEW.field_stamps IS NULL THEN NEW.writer
                    WHEN NEW.field_stamps->'fields' ? o.field
                        THEN NEW.field_stamps->'fields'->o.field->>1
                    ELSE NEW.field_stamps->'floor'->>1 END AS w
    ) n
    WHERE n.c IS NOT NULL AND stamp_cmp(n.c, n.w, o.c, o.w) > 0
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER documents_record_overtaken AFTER UPDATE ON documents
FOR EACH ROW EXECUTE FUNCTION record_overtaken();
