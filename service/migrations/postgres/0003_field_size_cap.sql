-- The stored size cap of a field-merged document (docs/protocol.md, "Per-field
-- merge"): merge_fields and merge_fields_many as in migration 0002, with one
-- more parameter, p_max_bytes, and one more refusal, 'too_large': a write
-- that would change the document and leave its stored size above
-- p_max_bytes changes nothing. Inside the same statement, so the check and
-- the write are one atomic step, and each write of a batch is judged on its
-- own. The functions are replaced whole (a new parameter is a new
-- signature), so 0002 stays as it shipped.
DROP FUNCTION merge_fields_many(text[], text[], text[], bigint[], text[],
    boolean[], jsonb[], jsonb[], jsonb[], bigint, timestamptz);
DROP FUNCTION merge_fields(text, text, text, bigint, text,
    boolean, jsonb, jsonb, text[], bigint, timestamptz);

-- The stored size as FieldDocument::stored_size counts it: the merged
-- value's compact JSON text (NULL, a deleted document: `null`, 4 bytes),
-- plus each field tombstone's name and 64 bytes (TOMBSTONE_BYTES). jsonb's
-- text puts a space after every `:` and `,` between items; those are taken
-- off, counted from the items (`$.**` in strict mode visits every object
-- and array once). `entries` holds the registers as merge_fields keeps
-- them: a tombstone is an entry without "v".
CREATE FUNCTION field_stored_size(p_value jsonb, p_entries jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(octet_length(p_value::text), 4)
        - coalesce((SELECT sum(CASE jsonb_typeof(x)
                WHEN 'object' THEN greatest(2 * (SELECT count(*) FROM jsonb_object_keys(x)) - 1, 0)
                WHEN 'array' THEN greatest(jsonb_array_length(x) - 1, 0)
                ELSE 0 END)
            FROM jsonb_path_query(p_value, 'strict $.**') x), 0)
        + coalesce((SELECT sum(octet_length(j.key) + 64)
            FROM jsonb_each(p_entries) j WHERE NOT j.value ? 'v'), 0)
$$;

-- The per-field merge of one write, as protocol/src/fields (decide.rs,
-- document.rs) states it, in one statement: `SELECT * FROM merge_fields(…)`.
-- A whole document is p_whole with p_value (NULL: a delete); a patch sets
-- p_sets ({name: value}) and deletes p_deletes. Answers the refusal
-- ('conflict', 'clock_jump' with the document's clock, or 'too_large' with
-- the stored size the write would leave, in stored_clock) or the decision
-- and every field's, and the document after it (no row: none was written).
--
-- Registers while merging: `entries` maps a field name to {"c": clock,
-- "w": writer} plus "v": its value unless it is a field tombstone, and the
-- floor is (f_clock, f_writer, f_deleted), f_clock NULL when there is none.
-- Values are compared as jsonb text, so 1 and 1.0 differ as they do in Rust.
--
-- Lock order as every writer: the tenant's counter row, then the document.
CREATE FUNCTION merge_fields(
    p_tenant text, p_owner text, p_name text,
    p_clock bigint, p_writer text,
    p_whole boolean, p_value jsonb, p_sets jsonb, p_deletes text[],
    p_max_jump bigint, p_now timestamptz, p_max_bytes bigint
) RETURNS TABLE (
    refusal text, stored_clock bigint, decision text, field_decisions text,
    tenant text, owner text, name text, value text, clock bigint, writer text,
    revision bigint, updated_at timestamptz, field_stamps text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    d documents%ROWTYPE;
    found_row boolean;
    f_clock bigint; f_writer text; f_deleted boolean;
    entries jsonb; spoken jsonb; incoming jsonb;
    decisions jsonb;
    k text; s jsonb; e jsonb; cmp int; dec text; whole_dec text;
    applies boolean; doc_clock bigint;
    n_value jsonb; n_clock bigint; n_writer text; n_fs jsonb; holds boolean;
    rev bigint; size bigint;
BEGIN
    PERFORM 1 FROM tenant_revisions t WHERE t.tenant = p_tenant FOR UPDATE;
    LOOP
        SELECT * INTO d FROM documents x
        WHERE x.tenant = p_tenant AND x.owner = p_owner AND x.name = p_name FOR UPDATE;
        found_row := FOUND;

        -- The stored registers. A row without field_stamps is one whole write.
        entries := '{}'; f_clock := NULL; f_writer := NULL; f_deleted := NULL;
        IF found_row AND d.field_stamps IS NULL THEN
            f_clock := d.clock; f_writer := d.writer; f_deleted := d.value IS NULL;
            SELECT coalesce(jsonb_object_agg(j.key,
                       jsonb_build_object('c', d.clock, 'w', d.writer, 'v', j.value)), '{}')
            INTO entries FROM jsonb_each(coalesce(d.value, '{}')) j;
        ELSIF found_row THEN
            IF jsonb_typeof(d.field_stamps->'floor') = 'array' THEN
                f_clock := (d.field_stamps->'floor'->>0)::bigint;
                f_writer := d.field_stamps->'floor'->>1;
                f_deleted := (d.field_stamps->'floor'->>2)::boolean;
            END IF;
            SELECT coalesce(jsonb_object_agg(j.key,
                       jsonb_build_object('c', j.value->0, 'w', j.value->>1)
                       || CASE WHEN d.value ? j.key
                               THEN jsonb_build_object('v', d.value->j.key)
                               ELSE '{}' END), '{}')
            INTO entries FROM jsonb_each(d.field_stamps->'fields') j;
        END IF;

        -- What the write says: {name: {"v": value}} for a set, {name: {}}
        -- for an absent one. A whole document also speaks of every field
        -- listed (absent unless it sets it).
        IF p_whole THEN
            SELECT coalesce(jsonb_object_agg(j.key, jsonb_build_object('v', j.value)), '{}')
            INTO incoming FROM jsonb_each(coalesce(p_value, '{}')) j;
            SELECT coalesce(jsonb_object_agg(j.key, '{}'::jsonb), '{}') || incoming
            INTO spoken FROM jsonb_each(entries) j;
        ELSE
            SELECT coalesce(jsonb_object_agg(j.key, jsonb_build_object('v', j.value)), '{}')
            INTO incoming FROM jsonb_each(coalesce(p_sets, '{}')) j;
            SELECT incoming || coalesce(jsonb_object_agg(x, '{}'::jsonb), '{}')
            INTO incoming FROM unnest(coalesce(p_deletes, '{}')) x;
            spoken := incoming;
        END IF;

        -- Each field against its own stamp, or the floor's.
        decisions := '{}';
        FOR k, s IN SELECT j.key, j.value FROM jsonb_each(spoken) j LOOP
            e := entries->k;
            IF e IS NOT NULL THEN
                cmp := stamp_cmp(p_clock, p_writer, (e->>'c')::bigint, e->>'w');
            ELSE
                cmp := stamp_cmp(p_clock, p_writer, f_clock, f_writer);
            END IF;
            IF cmp > 0 THEN dec := 'APPLIED';
            ELSIF cmp < 0 THEN dec := 'STALE';
            ELSIF (s->'v')::text IS NOT DISTINCT FROM (e->'v')::text THEN dec := 'UNCHANGED';
            ELSE
                RETURN QUERY SELECT 'conflict', NULL::bigint, NULL, NULL, NULL, NULL, NULL,
                    NULL, NULL::bigint, NULL, NULL::bigint, NULL::timestamptz, NULL;
                RETURN;
            END IF;
            decisions := decisions || jsonb_build_object(k, dec);
        END LOOP;

        -- The write as a whole: a whole document against the document's
        -- stamp; a patch STALE if any field is, else APPLIED if any is.
        IF p_whole THEN
            cmp := CASE WHEN found_row THEN stamp_cmp(p_clock, p_writer, d.clock, d.writer) ELSE 1 END;
            IF cmp > 0 THEN whole_dec := 'APPLIED';
            ELSIF cmp < 0 THEN whole_dec := 'STALE';
            ELSIF d.field_stamps IS NULL AND d.value::text IS NOT DISTINCT FROM p_value::text THEN
                whole_dec := 'UNCHANGED';
            ELSE
                RETURN QUERY SELECT 'conflict', NULL::bigint, NULL, NULL, NULL, NULL, NULL,
                    NULL, NULL::bigint, NULL, NULL::bigint, NULL::timestamptz, NULL;
                RETURN;
            END IF;
        ELSIF EXISTS (SELECT 1 FROM jsonb_each_text(decisions) j WHERE j.value = 'STALE') THEN
            whole_dec := 'STALE';
        ELSIF EXISTS (SELECT 1 FROM jsonb_each_text(decisions) j WHERE j.value = 'APPLIED') THEN
            whole_dec := 'APPLIED';
        ELSE
            whole_dec := 'UNCHANGED';
        END IF;

        -- The clock-jump limit, only when something would apply.
        applies := whole_dec = 'APPLIED'
            OR EXISTS (SELECT 1 FROM jsonb_each_text(decisions) j WHERE j.value = 'APPLIED');
        doc_clock := CASE WHEN found_row THEN d.clock ELSE 0 END;
        IF applies AND p_clock - doc_clock > p_max_jump THEN
            RETURN QUERY SELECT 'clock_jump', doc_clock, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL::bigint, NULL, NULL::bigint, NULL::timestamptz, NULL;
            RETURN;
        END IF;

        -- The join: the larger floor; each field the larger stamp; then
        -- every field the floor covers dropped (the tombstone collection).
        IF p_whole AND stamp_cmp(p_clock, p_writer, f_clock, f_writer) > 0 THEN
            f_clock := p_clock; f_writer := p_writer; f_deleted := p_value IS NULL;
        END IF;
        FOR k, s IN SELECT j.key, j.value FROM jsonb_each(incoming) j LOOP
            e := entries->k;
            IF e IS NULL OR stamp_cmp(p_clock, p_writer, (e->>'c')::bigint, e->>'w') > 0 THEN
                entries := entries || jsonb_build_object(k,
                    jsonb_build_object('c', p_clock, 'w', p_writer) || s);
            END IF;
        END LOOP;
        IF f_clock IS NOT NULL THEN
            SELECT coalesce(jsonb_object_agg(j.key, j.value), '{}') INTO entries
            FROM jsonb_each(entries) j
            WHERE NOT (stamp_cmp((j.value->>'c')::bigint, j.value->>'w', f_clock, f_writer) < 0
                       OR (stamp_cmp((j.value->>'c')::bigint, j.value->>'w', f_clock, f_writer) = 0
                           AND NOT j.value ? 'v'));
        END IF;

        -- The columns: the merged value, the document's stamp, and the
        -- registers only while some field is not at the floor.
        SELECT jsonb_object_agg(j.key, j.value->'v') INTO n_value
        FROM jsonb_each(entries) j WHERE j.value ? 'v';
        IF n_value IS NULL AND f_clock IS NOT NULL AND NOT f_deleted THEN
            n_value := '{}';
        END IF;
        SELECT m.c, m.w INTO n_clock, n_writer FROM (
            SELECT (j.value->>'c')::bigint AS c, j.value->>'w' AS w FROM jsonb_each(entries) j
            UNION ALL SELECT f_clock, f_writer WHERE f_clock IS NOT NULL
        ) m ORDER BY m.c DESC, m.w COLLATE "C" DESC LIMIT 1;
        holds := EXISTS (SELECT 1 FROM jsonb_each(entries) j
            WHERE f_clock IS NULL OR stamp_cmp((j.value->>'c')::bigint, j.value->>'w', f_clock, f_writer) <> 0);
        n_fs := CASE WHEN holds THEN jsonb_build_object(
            'floor', CASE WHEN f_clock IS NULL THEN 'null'::jsonb
                          ELSE jsonb_build_array(f_clock, f_writer, f_deleted) END,
            'fields', (SELECT jsonb_object_agg(j.key, jsonb_build_array(j.value->'c', j.value->'w'))
                       FROM jsonb_each(entries) j)) END;

        -- Nothing changed (nothing written, or all stale): no write.
        IF n_clock IS NULL OR (found_row
            AND n_value::text IS NOT DISTINCT FROM d.value::text
            AND (n_clock, n_writer) = (d.clock, d.writer)
            AND n_fs::text IS NOT DISTINCT FROM d.field_stamps::text) THEN
            RETURN QUERY SELECT NULL::text, NULL::bigint, whole_dec, decisions::text,
                d.tenant::text, d.owner::text, d.name::text, d.value::text, d.clock, d.writer::text,
                d.revision, d.updated_at, d.field_stamps::text
            WHERE found_row
            UNION ALL SELECT NULL, NULL, whole_dec, decisions::text, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL, NULL
            WHERE NOT found_row;
            RETURN;
        END IF;

        -- The stored size cap (migration 0003), only when the state changes.
        size := field_stored_size(n_value, entries);
        IF size > p_max_bytes THEN
            RETURN QUERY SELECT 'too_large', size, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL::bigint, NULL, NULL::bigint, NULL::timestamptz, NULL;
            RETURN;
        END IF;

        INSERT INTO tenant_revisions AS t (tenant, revision) VALUES (p_tenant, 1)
        ON CONFLICT ON CONSTRAINT tenant_revisions_pkey DO UPDATE SET revision = t.revision + 1
        RETURNING t.revision INTO rev;
        IF found_row THEN
            UPDATE documents x SET value = n_value, clock = n_clock, writer = n_writer,
                revision = rev, updated_at = p_now, field_stamps = n_fs
            WHERE x.tenant = p_tenant AND x.owner = p_owner AND x.name = p_name;
        ELSE
            INSERT INTO documents AS x (tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps)
            VALUES (p_tenant, p_owner, p_name, n_value, n_clock, n_writer, rev, p_now, n_fs)
            ON CONFLICT ON CONSTRAINT documents_pkey DO NOTHING;
            -- A first write of this document committed meanwhile: merge
            -- again over it (that revision stays unused, as a refused write's).
            CONTINUE WHEN NOT FOUND;
        END IF;
        INSERT INTO changes (tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps)
        VALUES (p_tenant, p_owner, p_name, n_value, n_clock, n_writer, rev, p_now, n_fs);
        RETURN QUERY SELECT NULL::text, NULL::bigint, whole_dec, decisions::text,
            p_tenant, p_owner, p_name, n_value::text, n_clock, n_writer, rev, p_now, n_fs::text;
        RETURN;
    END LOOP;
END
$$;

-- Write-combining: several per-field writes in one statement, each merged
-- by merge_fields in key order, and writes to one document in the order
-- given (p_*[i] is write i). Every tenant's counter row is locked first, in
-- tenant order, then documents in key order: the order of the combined
-- whole-document statement, so batches of either kind never deadlock.
-- Answers one row per write, `ord` being its i.
CREATE FUNCTION merge_fields_many(
    p_tenants text[], p_owners text[], p_names text[],
    p_clocks bigint[], p_writers text[],
    p_wholes boolean[], p_values jsonb[], p_sets jsonb[], p_deletes jsonb[],
    p_max_jump bigint, p_now timestamptz, p_max_bytes bigint
) RETURNS TABLE (
    ord bigint, refusal text, stored_clock bigint, decision text, field_decisions text,
    tenant text, owner text, name text, value text, clock bigint, writer text,
    revision bigint, updated_at timestamptz, field_stamps text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i bigint;
BEGIN
    PERFORM 1 FROM tenant_revisions t
    WHERE t.tenant = ANY (p_tenants) ORDER BY t.tenant COLLATE "C" FOR UPDATE;
    FOR i IN
        SELECT w.i FROM unnest(p_tenants, p_owners, p_names) WITH ORDINALITY AS w(t, o, n, i)
        ORDER BY w.t COLLATE "C", w.o COLLATE "C", w.n COLLATE "C", w.i
    LOOP
        RETURN QUERY SELECT i, m.* FROM merge_fields(
            p_tenants[i], p_owners[i], p_names[i], p_clocks[i], p_writers[i],
            p_wholes[i], p_values[i], p_sets[i],
            ARRAY(SELECT jsonb_array_elements_text(p_deletes[i])),
            p_max_jump, p_now, p_max_bytes) m;
    END LOOP;
END
$$;
