-- realtime_notify_v3(): a big statement is logged in one row, not one row per change.
--
-- v2 (004_statement_trigger.sql) appended every changed row to realtime_event: a
-- 10,000-row INSERT wrote 10,000 more rows with two btree entries each, and cost the
-- writer 3.5x its own time (docs/performance.md). v3 is v2 except for statements of more
-- than 100 rows, which now append one log row per 10,000 changes:
--
--     id        the last change id in it (so "log rows with id > N" still finds every
--               change above N)
--     first_id  the first change id in it
--     ids       every change id in it, ascending (a nextval() per change, as before:
--               ids of concurrent writers may fall between them)
--     data      a JSON array of the rows, row_to_json() as before, in the order of ids
--
-- Each change keeps its own id, so streams, replay and Last-Event-ID are unchanged.
-- Rows of statements of up to 100 rows, and of v1 and v2, have first_id and ids NULL.
-- realtime_changes(after_id, up_to) gives every change of the log, whichever row holds
-- it, and realtime_changes_after(after_id, max_rows, ...) the next ones in id order:
-- read the log through them, not from realtime_event directly.
--
-- The NOTIFY is v2's: one notification per row up to 100 rows, else one
-- {"table", "op", "first_id", "last_id", "rows", "xid", "written_at"} for the statement.
-- A log row's JSON is kept under 64 MB: a statement whose rows are bigger than that
-- together (PostgreSQL refuses one value over 1 GB) falls back to v2's one log row per
-- change, so the writer never fails because of the log. The packing runs in a
-- subtransaction (BEGIN ... EXCEPTION) to fall back cleanly: each statement of more than
-- 100 rows uses one more transaction id, and a transaction with more than 64 of them
-- overflows PostgreSQL's per-session cache of subtransactions (snapshots of other
-- sessions get slower while it runs).
--
-- Run by migration 0006 (0007 then moves the watched tables to v3); a DBA can run it
-- with:  psql -f sql/005_statement_log_rows.sql
--     SELECT realtime_watch_v3('violation_humandetections');
--     SELECT realtime_unwatch_v3('myschema.my_table');

ALTER TABLE realtime_event
    ADD COLUMN IF NOT EXISTS first_id bigint,
    ADD COLUMN IF NOT EXISTS ids bigint[];

-- lz4 where the server has it: with the default pglz, compressing a 10,000-row
-- statement's JSON cost the writer about half its own insert time more.
DO $$
BEGIN
    ALTER TABLE realtime_event ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: realtime_event.data keeps the default compression';
END;
$$;

-- Find the statement rows above an id, and the lowest change id in them, without
-- walking the rows of single changes (one entry per statement row: cheap to write).
CREATE INDEX IF NOT EXISTS realtime_event_statement_idx
    ON realtime_event (id) WHERE ids IS NOT NULL;
CREATE INDEX IF NOT EXISTS realtime_event_statement_first_idx
    ON realtime_event (first_id) WHERE ids IS NOT NULL;

-- Every change with after_id < id <= up_to, one row per change, in no particular order;
-- given `wanted`, just the changes with those ids. Plain SQL, so the planner inlines it
-- into the caller's query. A statement row that overlaps the range (and, given `wanted`,
-- holds one of those ids) is unpacked whole: its JSON is parsed to the end.
CREATE OR REPLACE FUNCTION realtime_changes(
    after_id bigint, up_to bigint, wanted bigint[] DEFAULT NULL
)
RETURNS TABLE (id bigint, table_name text, op text, data json, xid xid8, created_at timestamptz)
LANGUAGE sql
STABLE
AS $$
    SELECT e.id, e.table_name, e.op, e.data, e.xid, e.created_at
    FROM realtime_event e
    WHERE e.ids IS NULL AND e.id > after_id AND e.id <= up_to
      AND (wanted IS NULL OR e.id = ANY(wanted))
    UNION ALL
    SELECT c.id, e.table_name, e.op, c.data, e.xid, e.created_at
    FROM realtime_event e,
         ROWS FROM (unnest(e.ids), json_array_elements(e.data)) AS c (id, data)
    WHERE e.ids IS NOT NULL AND e.id > after_id AND e.first_id <= up_to
      AND (wanted IS NULL OR e.ids && wanted)
      AND c.id > after_id AND c.id <= up_to
      AND (wanted IS NULL OR c.id = ANY(wanted))
$$;

-- The first max_rows changes above after_id, in id order, optionally only those of some
-- tables and one camera. It reads the log a window of ids at a time, skipping empty
-- stretches, so a replay never unpacks more statement rows than one window holds; single
-- changes are read in index order and stop at max_rows.
CREATE OR REPLACE FUNCTION realtime_changes_after(
    after_id bigint,
    max_rows integer,
    tables text[] DEFAULT NULL,
    camera text DEFAULT NULL
)
RETURNS TABLE (id bigint, table_name text, op text, data json, xid xid8, created_at timestamptz)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
DECLARE
    window_size CONSTANT bigint := 10000;
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
                (SELECT e.id, e.table_name, e.op, e.data, e.xid, e.created_at
                 FROM realtime_event e
                 WHERE e.ids IS NULL AND e.id > low AND e.id <= high
                   AND (tables IS NULL OR e.table_name = ANY(tables))
                   AND (camera IS NULL OR e.data->>'camera_id' = camera)
                 ORDER BY e.id
                 LIMIT wanted)
                UNION ALL
                SELECT c.id, e.table_name, e.op, c.data, e.xid, e.created_at
                FROM realtime_event e,
                     ROWS FROM (unnest(e.ids), json_array_elements(e.data)) AS c (id, data)
                WHERE e.ids IS NOT NULL AND e.id > low AND e.first_id <= high
                  AND (tables IS NULL OR e.table_name = ANY(tables))
                  AND c.id > low AND c.id <= high
                  AND (camera IS NULL OR c.data->>'camera_id' = camera)
            ) u
            ORDER BY u.id
            LIMIT wanted;
        GET DIAGNOSTICS returned = ROW_COUNT;
        max_rows := max_rows - returned;
        low := high;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION realtime_notify_v3() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    per_row_max     CONSTANT int := 100;
    per_entry_max   CONSTANT int := 10000;
    per_entry_bytes CONSTANT int := 64 * 1024 * 1024;
    written_at      float8 := extract(epoch FROM clock_timestamp());
    notify          boolean := pg_notification_queue_usage()
        < coalesce(nullif(current_setting('realtime.notify_queue_limit', true), '')::float8, 0.5);
    row_count       bigint;
    statement_first bigint;
    statement_last  bigint;
    packed_data     json;
    packed_ids      bigint[];
    packed          record;
    logged          record;
    payload         text;
BEGIN
    SELECT count(*) INTO row_count FROM changed_rows;
    IF row_count = 0 THEN
        RETURN NULL;
    END IF;

    IF row_count <= per_row_max THEN
        FOR logged IN
            INSERT INTO realtime_event (table_name, op, data)
            SELECT TG_TABLE_NAME, TG_OP, row_to_json(r) FROM changed_rows r
            RETURNING id, data
        LOOP
            CONTINUE WHEN NOT notify;
            payload := json_build_object(
                'id', logged.id, 'table', TG_TABLE_NAME, 'op', TG_OP, 'data', logged.data,
                'written_at', written_at
            )::text;
            IF octet_length(payload) >= 8000 THEN
                payload := json_build_object(
                    'id', logged.id, 'table', TG_TABLE_NAME, 'op', TG_OP,
                    'written_at', written_at
                )::text;
            END IF;
            PERFORM pg_notify('realtime_changed_v1', payload);
        END LOOP;
        RETURN NULL;
    END IF;

    BEGIN
        IF row_count <= per_entry_max THEN
            -- One pass, no sort: both aggregates take the rows in scan order, in which
            -- nextval() gave ascending ids, so ids[i] belongs to the i-th row of data.
            SELECT max(c.id), min(c.id), json_agg(c.data), array_agg(c.id)
            INTO statement_last, statement_first, packed_data, packed_ids
            FROM (
                SELECT nextval('realtime_event_id_seq') AS id, row_to_json(r) AS data
                FROM changed_rows r
            ) c;
            IF octet_length(packed_data::text) > per_entry_bytes THEN
                RAISE EXCEPTION USING ERRCODE = 'program_limit_exceeded';
            END IF;
            INSERT INTO realtime_event (id, table_name, op, data, first_id, ids)
            VALUES (statement_last, TG_TABLE_NAME, TG_OP, packed_data, statement_first,
                    packed_ids);
        ELSE
            FOR packed IN
                SELECT max(c.id) AS last, min(c.id) AS first,
                       json_agg(c.data ORDER BY c.id) AS data, array_agg(c.id ORDER BY c.id) AS ids
                FROM (
                    SELECT nextval('realtime_event_id_seq') AS id, row_to_json(r) AS data
                    FROM changed_rows r
                ) c
                GROUP BY c.id / per_entry_max
            LOOP
                IF octet_length(packed.data::text) > per_entry_bytes THEN
                    RAISE EXCEPTION USING ERRCODE = 'program_limit_exceeded';
                END IF;
                INSERT INTO realtime_event (id, table_name, op, data, first_id, ids)
                VALUES (packed.last, TG_TABLE_NAME, TG_OP, packed.data, packed.first, packed.ids);
                statement_first := least(statement_first, packed.first);
                statement_last := greatest(statement_last, packed.last);
            END LOOP;
        END IF;
    EXCEPTION WHEN program_limit_exceeded OR out_of_memory THEN
        -- Too big to pack (over per_entry_bytes, or over 1 GB while packing): a log row
        -- per change, as v2.
        WITH appended AS (
            INSERT INTO realtime_event (table_name, op, data)
            SELECT TG_TABLE_NAME, TG_OP, row_to_json(r) FROM changed_rows r
            RETURNING realtime_event.id
        )
        SELECT min(a.id), max(a.id) INTO statement_first, statement_last FROM appended a;
    END;
    IF notify THEN
        PERFORM pg_notify('realtime_changed_v1', json_build_object(
            'table', TG_TABLE_NAME, 'op', TG_OP, 'first_id', statement_first, 'last_id', statement_last,
            'rows', row_count, 'xid', pg_current_xact_id()::text, 'written_at', written_at
        )::text);
    END IF;
    RETURN NULL;
END;
$$;

-- Stops watching a table: drops the triggers of every version (v1, v2, v3).
CREATE OR REPLACE FUNCTION realtime_unwatch_v3(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v1 ON %s', target);
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v2_%s ON %s', op, target);
        EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v3_%s ON %s', op, target);
    END LOOP;
END;
$$;

-- Watches a table with v3, replacing whatever version watched it.
CREATE OR REPLACE FUNCTION realtime_watch_v3(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    PERFORM realtime_unwatch_v3(target);
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format(
            'CREATE TRIGGER realtime_notify_v3_%s AFTER %s ON %s '
            'REFERENCING %s TABLE AS changed_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION realtime_notify_v3()',
            op, upper(op), target, CASE op WHEN 'delete' THEN 'OLD' ELSE 'NEW' END
        );
    END LOOP;
END;
$$;

-- The functions of v1 and v2 (sql/003, sql/004), which scripts may still call, now
-- replace every other version too: two versions on one table would each log every
-- change, under two ids. (Migration 0006 puts the old definitions back on reverse.)
CREATE OR REPLACE FUNCTION realtime_watch_v1(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM realtime_unwatch_v3(target);
    EXECUTE format(
        'CREATE TRIGGER realtime_notify_v1 AFTER INSERT OR UPDATE OR DELETE ON %s '
        'FOR EACH ROW EXECUTE FUNCTION realtime_notify_v1()',
        target
    );
END;
$$;

CREATE OR REPLACE FUNCTION realtime_watch_v2(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    PERFORM realtime_unwatch_v3(target);
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format(
            'CREATE TRIGGER realtime_notify_v2_%s AFTER %s ON %s '
            'REFERENCING %s TABLE AS changed_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION realtime_notify_v2()',
            op, upper(op), target, CASE op WHEN 'delete' THEN 'OLD' ELSE 'NEW' END
        );
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION realtime_unwatch_v1(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM realtime_unwatch_v3(target);
END;
$$;

CREATE OR REPLACE FUNCTION realtime_unwatch_v2(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM realtime_unwatch_v3(target);
END;
$$;
