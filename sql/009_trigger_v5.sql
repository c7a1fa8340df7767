-- realtime_notify_v5(): v4 (007_trigger_v4.sql) with two changes.
--
-- 1. Nothing of the caller's steers a function that runs as its owner. v1 to v4 and the
--    acknowledgements' STATE functions are SECURITY DEFINER and were created with
--    `SET search_path FROM CURRENT` ("$user", public). PostgreSQL then searches the
--    caller's temporary schema first for tables and sequences: a detector's role that may
--    only INSERT into one table could shadow realtime_event with a temp table whose
--    DEFAULT calls a function of its own, and so run SQL as the functions' owner, and hide
--    its rows from every screen (issue 22, finding 1; tests/test_definer_functions.py).
--    Every SECURITY DEFINER function of the product now has
--
--        search_path = pg_catalog, <the product's schema>, pg_temp
--
--    set by realtime_pin_search_path(): v5 here, and every older version still
--    installed (they may still be attached where the product's role could not replace
--    them). pg_catalog first, so no built-in can be shadowed; pg_temp last, so no temp
--    object can; functions and operators are never looked up in pg_temp at all. Names
--    are not schema-qualified in the bodies: the product's schema is the deployment's
--    choice and these files are run by psql as well as by migrations, and qualifying
--    would not stop what the pinned path does not already (an overload created in the
--    product's own schema: `manage.py check` warns when any role but its owner may
--    CREATE there, realtime.W005).
--
-- 2. An UPDATE that moves a row to another camera logs the row as it was, in the new
--    column realtime_event.old_data (NULL for every other change; for a statement row, a
--    JSON array beside `data`, or NULL when no row of it moved). A stream that showed the
--    row is then told it left, as a DELETE of the row as it knew it, and a stream it
--    enters gets it as an insert (realtime.membership): the product's filters (sites,
--    ?camera=, the per-camera streams) all go by camera_id. Rows are paired with their
--    old versions by `id`; a table without the columns id and camera_id logs no old_data.
--
-- realtime_changes() and realtime_changes_after() now return old_data too (a column
-- added at the end: readers of v4's code select their columns by name), and the latter's
-- camera filter keeps a change whose row left that camera.
--
-- Everything else is v4's: the log rows, their ids, the NOTIFY payloads.
--
-- Run by migration 0018 (0019 then moves the watched tables to v5). A DBA can run it in
-- one transaction (the search path is pinned after each function is created):
--     psql -1 -f sql/009_trigger_v5.sql
--     SELECT realtime_watch_v5('violation_humandetections');
-- sql/schema.sql shows everything as the migrations leave it.

ALTER TABLE realtime_event ADD COLUMN IF NOT EXISTS old_data json;

DO $$
BEGIN
    ALTER TABLE realtime_event ALTER COLUMN old_data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: realtime_event.old_data keeps the default compression';
END;
$$;

-- Pins a function's search path to pg_catalog, its own schema, and pg_temp last.
CREATE OR REPLACE FUNCTION realtime_pin_search_path(fn regprocedure) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp',
        fn,
        (SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.oid = fn)
    );
END;
$$;

-- Every change with after_id < id <= up_to (sql/005), with the row as it was before an
-- UPDATE moved it to another camera.
DROP FUNCTION realtime_changes(bigint, bigint, bigint[]);
CREATE FUNCTION realtime_changes(
    after_id bigint, up_to bigint, wanted bigint[] DEFAULT NULL
)
RETURNS TABLE (
    id bigint, table_name text, op text, data json, xid xid8, created_at timestamptz,
    old_data json
)
LANGUAGE sql
STABLE
AS $$
    SELECT e.id, e.table_name, e.op, e.data, e.xid, e.created_at, e.old_data
    FROM realtime_event e
    WHERE e.ids IS NULL AND e.id > after_id AND e.id <= up_to
      AND (wanted IS NULL OR e.id = ANY(wanted))
    UNION ALL
    SELECT c.id, e.table_name, e.op, c.data, e.xid, e.created_at, c.old_data
    FROM realtime_event e,
         ROWS FROM (unnest(e.ids), json_array_elements(e.data), json_array_elements(e.old_data))
             AS c (id, data, old_data)
    WHERE e.ids IS NOT NULL AND e.id > after_id AND e.first_id <= up_to
      AND (wanted IS NULL OR e.ids && wanted)
      AND c.id > after_id AND c.id <= up_to
      AND (wanted IS NULL OR c.id = ANY(wanted))
$$;

-- The first max_rows changes above after_id (sql/007), with old_data; a camera's changes
-- are those of rows at that camera and of rows that left it.
DROP FUNCTION realtime_changes_after(bigint, integer, text[], text);
CREATE FUNCTION realtime_changes_after(
    after_id bigint,
    max_rows integer,
    tables text[] DEFAULT NULL,
    camera text DEFAULT NULL
)
RETURNS TABLE (
    id bigint, table_name text, op text, data json, xid xid8, created_at timestamptz,
    old_data json
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
DECLARE
    window_size CONSTANT bigint := realtime_log_window();
    low      bigint := after_id;
    high     bigint;
    next_id  bigint;
    wanted   integer;
    returned integer;
BEGIN
    WHILE max_rows > 0 LOOP
        -- The lowest change id above low, if there is one.
        SELECT least(
            (SELECT e.id FROM realtime_event e WHERE e.ids IS NULL AND e.id > low
             ORDER BY e.id LIMIT 1),
            (SELECT min(e.first_id) FROM realtime_event e WHERE e.ids IS NOT NULL AND e.id > low)
        ) INTO next_id;
        EXIT WHEN next_id IS NULL;
        low := greatest(low, next_id - 1);
        high := low + window_size;
        wanted := max_rows;
        RETURN QUERY
            SELECT u.* FROM (
                (SELECT e.id, e.table_name, e.op, e.data, e.xid, e.created_at, e.old_data
                 FROM realtime_event e
                 WHERE e.ids IS NULL AND e.id > low AND e.id <= high
                   AND (tables IS NULL OR e.table_name = ANY(tables))
                   AND (camera IS NULL OR e.data->>'camera_id' = camera
                        OR e.old_data->>'camera_id' = camera)
                 ORDER BY e.id
                 LIMIT wanted)
                UNION ALL
                SELECT c.id, e.table_name, e.op, c.data, e.xid, e.created_at, c.old_data
                FROM realtime_event e,
                     ROWS FROM (unnest(e.ids), json_array_elements(e.data),
                                json_array_elements(e.old_data)) AS c (id, data, old_data)
                WHERE e.ids IS NOT NULL AND e.id > low AND e.first_id <= high
                  AND (tables IS NULL OR e.table_name = ANY(tables))
                  AND c.id > low AND c.id <= high
                  AND (camera IS NULL OR c.data->>'camera_id' = camera
                       OR c.old_data->>'camera_id' = camera)
            ) u
            ORDER BY u.id
            LIMIT wanted;
        GET DIAGNOSTICS returned = ROW_COUNT;
        max_rows := max_rows - returned;
        low := high;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION realtime_notify_v5() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
-- A safe value until realtime_pin_search_path() below names the product's schema.
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    per_row_max     CONSTANT int := 100;
    per_entry_max   CONSTANT int := realtime_log_window();
    per_entry_bytes CONSTANT int := 64 * 1024 * 1024;
    written_at      float8 := extract(epoch FROM clock_timestamp());
    notify          boolean := realtime_notify_has_room();
    row_count       bigint;
    statement_first bigint;
    statement_last  bigint;
    packed_data     json;
    packed_old      json;
    packed_ids      bigint[];
    packed          record;
    logged          record;
    -- The rows an UPDATE moved to another camera, as they were: their id (text) ->
    -- their JSON (text, so that it keeps row_to_json's key order). NULL: none moved.
    moved           jsonb;
BEGIN
    SELECT count(*) INTO row_count FROM changed_rows;
    IF row_count = 0 THEN
        RETURN NULL;
    END IF;

    IF TG_OP = 'UPDATE'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = TG_RELID
                   AND a.attname = 'camera_id' AND NOT a.attisdropped)
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = TG_RELID
                   AND a.attname = 'id' AND NOT a.attisdropped)
    THEN
        -- PL/pgSQL plans this per table it is attached to, so the columns resolve.
        SELECT jsonb_object_agg(o.id::text, row_to_json(o)::text) INTO moved
        FROM old_rows o JOIN changed_rows n ON n.id = o.id
        WHERE o.camera_id IS DISTINCT FROM n.camera_id;
    END IF;

    IF row_count <= per_row_max THEN
        FOR logged IN
            INSERT INTO realtime_event (table_name, op, data, old_data)
            SELECT TG_TABLE_NAME, TG_OP, c.data,
                   CASE WHEN moved IS NOT NULL THEN (moved ->> (c.data->>'id'))::json END
            FROM (SELECT row_to_json(r) AS data FROM changed_rows r) c
            RETURNING id, data
        LOOP
            CONTINUE WHEN NOT notify;
            PERFORM realtime_notify_change(logged.id, TG_TABLE_NAME, TG_OP, logged.data, written_at);
        END LOOP;
        RETURN NULL;
    END IF;

    BEGIN
        IF row_count <= per_entry_max THEN
            -- One pass, no sort: the aggregates take the rows in scan order, in which
            -- nextval() gave ascending ids, so ids[i] belongs to the i-th row of data.
            SELECT max(c.id), min(c.id), json_agg(c.data), array_agg(c.id),
                   CASE WHEN moved IS NOT NULL
                        THEN json_agg((moved ->> (c.data->>'id'))::json) END
            INTO statement_last, statement_first, packed_data, packed_ids, packed_old
            FROM (
                SELECT nextval('realtime_event_id_seq') AS id, row_to_json(r) AS data
                FROM changed_rows r
            ) c;
            IF octet_length(packed_data::text) + coalesce(octet_length(packed_old::text), 0)
               > per_entry_bytes
            THEN
                RAISE EXCEPTION USING ERRCODE = 'program_limit_exceeded';
            END IF;
            INSERT INTO realtime_event (id, table_name, op, data, first_id, ids, old_data)
            VALUES (statement_last, TG_TABLE_NAME, TG_OP, packed_data, statement_first,
                    packed_ids, packed_old);
        ELSE
            FOR packed IN
                SELECT max(c.id) AS last, min(c.id) AS first,
                       json_agg(c.data ORDER BY c.id) AS data, array_agg(c.id ORDER BY c.id) AS ids,
                       CASE WHEN moved IS NOT NULL
                            THEN json_agg((moved ->> (c.data->>'id'))::json ORDER BY c.id)
                       END AS old_data
                FROM (
                    SELECT nextval('realtime_event_id_seq') AS id, row_to_json(r) AS data
                    FROM changed_rows r
                ) c
                GROUP BY c.id / per_entry_max
            LOOP
                IF octet_length(packed.data::text)
                   + coalesce(octet_length(packed.old_data::text), 0) > per_entry_bytes
                THEN
                    RAISE EXCEPTION USING ERRCODE = 'program_limit_exceeded';
                END IF;
                INSERT INTO realtime_event (id, table_name, op, data, first_id, ids, old_data)
                VALUES (packed.last, TG_TABLE_NAME, TG_OP, packed.data, packed.first, packed.ids,
                        packed.old_data);
                statement_first := least(statement_first, packed.first);
                statement_last := greatest(statement_last, packed.last);
            END LOOP;
        END IF;
    EXCEPTION WHEN program_limit_exceeded OR out_of_memory THEN
        -- Too big to pack (over per_entry_bytes, or over 1 GB while packing): a log row
        -- per change.
        WITH appended AS (
            INSERT INTO realtime_event (table_name, op, data, old_data)
            SELECT TG_TABLE_NAME, TG_OP, c.data,
                   CASE WHEN moved IS NOT NULL THEN (moved ->> (c.data->>'id'))::json END
            FROM (SELECT row_to_json(r) AS data FROM changed_rows r) c
            RETURNING realtime_event.id
        )
        SELECT min(a.id), max(a.id) INTO statement_first, statement_last FROM appended a;
    END;
    IF notify THEN
        PERFORM realtime_notify_statement(
            TG_TABLE_NAME, TG_OP, statement_first, statement_last, row_count, written_at
        );
    END IF;
    RETURN NULL;
END;
$$;

-- The trigger function of every version there has been (a newer version adds itself here).
CREATE OR REPLACE FUNCTION realtime_trigger_functions() RETURNS regprocedure[]
LANGUAGE sql
STABLE
AS $$
    SELECT array_remove(ARRAY[
        to_regprocedure('realtime_notify_v1()'),
        to_regprocedure('realtime_notify_v2()'),
        to_regprocedure('realtime_notify_v3()'),
        to_regprocedure('realtime_notify_v4()'),
        to_regprocedure('realtime_notify_v5()')
    ], NULL)
$$;

-- Watches a table with v5, replacing whatever version watched it; nothing to do (and no
-- lock taken) when v5 alone watches it already. The UPDATE trigger sees the old rows too.
CREATE OR REPLACE FUNCTION realtime_watch_v5(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    IF (SELECT array_agg(DISTINCT w.trigger_function) FROM realtime_watched_tables() w
        WHERE w.target = $1) = ARRAY['realtime_notify_v5()'::regprocedure]
       AND (SELECT count(*) FROM pg_trigger t
            WHERE t.tgrelid = $1 AND t.tgfoid = 'realtime_notify_v5()'::regprocedure) = 3
    THEN
        RETURN;
    END IF;
    PERFORM realtime_unwatch_v4(target);
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION realtime_notify_v5()',
            'realtime_notify_v5_' || op, upper(op), target,
            CASE op
                WHEN 'insert' THEN 'NEW TABLE AS changed_rows'
                WHEN 'update' THEN 'OLD TABLE AS old_rows NEW TABLE AS changed_rows'
                ELSE 'OLD TABLE AS changed_rows'
            END
        );
    END LOOP;
END;
$$;

-- Stops watching a table: drops the product's triggers of every version (v4's function).
CREATE OR REPLACE FUNCTION realtime_unwatch_v5(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM realtime_unwatch_v4(target);
END;
$$;

-- Every SECURITY DEFINER function of the product, v5's and every older one's.
SELECT realtime_pin_search_path(p.oid::regprocedure)
FROM pg_proc p
WHERE p.prosecdef AND p.proname LIKE 'realtime\_%'
  AND p.pronamespace = current_schema()::regnamespace;
