-- realtime_notify_v4(): v3 (005_statement_log_rows.sql) written with one helper function
-- per shared fact, so that each is stated once:
--
--     realtime_log_window()          10,000: the most changes one log row holds, and the
--                                    window in which the log is read
--     realtime_notify_has_room()     the NOTIFY-queue limit: a NOTIFY is skipped while the
--                                    queue is more than realtime.notify_queue_limit full
--                                    (default 0.5), since a full queue fails the writer's
--                                    COMMIT; the listener's catch-up delivers from the log
--     realtime_notify_change()       one change's notification, without its "data" at
--                                    NOTIFY's 8000-byte limit
--     realtime_notify_statement()    a statement's notification
--     realtime_trigger_functions()   every version's trigger function
--     realtime_watched_tables()      the tables those watch, and which version does
--
-- What a watched table's change does is v3's, unchanged: the log rows, their ids, and the
-- NOTIFY payloads on channel realtime_changed_v1 (README, "Listening directly"):
--
--     up to 100 rows   a log row and {"id", "table", "op", "data", "written_at"} per row
--     more             a log row per 10,000 changes (first_id, ids, data a JSON array),
--                      and one {"table", "op", "first_id", "last_id", "rows", "xid",
--                      "written_at"} for the statement
--
-- A notification is a hint to wake up, never the truth: the listener forwards only what
-- it reads from the log (architecture decision 11).
--
-- realtime_unwatch_v4() finds the product's triggers by the function they run, not by
-- name, and the older versions' watch functions now go through it (a table is never
-- watched twice). The acknowledgements' STATE events (sql/006) use the same helpers, in
-- realtime_state_changed_v2().
--
-- Run by migration 0012 (0013 then moves the watched tables to v4); a DBA can run it with:
--     psql -f sql/007_trigger_v4.sql
--     SELECT realtime_watch_v4('violation_humandetections');
--     SELECT realtime_unwatch_v4('myschema.my_table');
--     SELECT * FROM realtime_watched_tables();
-- sql/schema.sql shows everything as the migrations leave it.

CREATE OR REPLACE FUNCTION realtime_log_window() RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$ SELECT 10000 $$;

CREATE OR REPLACE FUNCTION realtime_notify_has_room() RETURNS boolean
LANGUAGE sql
VOLATILE
AS $$
    SELECT pg_notification_queue_usage()
        < coalesce(nullif(current_setting('realtime.notify_queue_limit', true), '')::float8, 0.5)
$$;

-- One change's notification; "data" is left out when it is NULL or would take the payload
-- to NOTIFY's 8000-byte limit (the log has it).
CREATE OR REPLACE FUNCTION realtime_notify_change(
    event_id bigint, table_name text, op text, data json, written_at float8
) RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    payload text;
BEGIN
    IF data IS NOT NULL THEN
        payload := json_build_object(
            'id', event_id, 'table', table_name, 'op', op, 'data', data, 'written_at', written_at
        )::text;
    END IF;
    IF payload IS NULL OR octet_length(payload) >= 8000 THEN
        payload := json_build_object(
            'id', event_id, 'table', table_name, 'op', op, 'written_at', written_at
        )::text;
    END IF;
    PERFORM pg_notify('realtime_changed_v1', payload);
END;
$$;

-- A statement's notification: its transaction wrote changes first_id..last_id of it.
CREATE OR REPLACE FUNCTION realtime_notify_statement(
    table_name text, op text, first_id bigint, last_id bigint, row_count bigint, written_at float8
) RETURNS void
LANGUAGE sql
VOLATILE
AS $$
    SELECT pg_notify('realtime_changed_v1', json_build_object(
        'table', table_name, 'op', op, 'first_id', first_id, 'last_id', last_id,
        'rows', row_count, 'xid', pg_current_xact_id()::text, 'written_at', written_at
    )::text)
$$;

CREATE OR REPLACE FUNCTION realtime_notify_v4() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
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
    packed_ids      bigint[];
    packed          record;
    logged          record;
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
            PERFORM realtime_notify_change(logged.id, TG_TABLE_NAME, TG_OP, logged.data, written_at);
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
        -- per change.
        WITH appended AS (
            INSERT INTO realtime_event (table_name, op, data)
            SELECT TG_TABLE_NAME, TG_OP, row_to_json(r) FROM changed_rows r
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

-- realtime_changes_after() of sql/005, reading realtime_log_window() ids at a time.
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

-- The trigger function of every version there has been (a newer version adds itself here).
CREATE OR REPLACE FUNCTION realtime_trigger_functions() RETURNS regprocedure[]
LANGUAGE sql
STABLE
AS $$
    SELECT array_remove(ARRAY[
        to_regprocedure('realtime_notify_v1()'),
        to_regprocedure('realtime_notify_v2()'),
        to_regprocedure('realtime_notify_v3()'),
        to_regprocedure('realtime_notify_v4()')
    ], NULL)
$$;

-- Every table the product watches, and the trigger function (the version) that does.
CREATE OR REPLACE FUNCTION realtime_watched_tables()
RETURNS TABLE (target regclass, trigger_function regprocedure)
LANGUAGE sql
STABLE
AS $$
    SELECT DISTINCT t.tgrelid::regclass, t.tgfoid::regprocedure
    FROM pg_trigger t
    WHERE NOT t.tgisinternal AND t.tgfoid = ANY(realtime_trigger_functions())
    ORDER BY 1, 2
$$;

-- Stops watching a table: drops the product's triggers of every version.
CREATE OR REPLACE FUNCTION realtime_unwatch_v4(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    trigger_name name;
BEGIN
    FOR trigger_name IN
        SELECT t.tgname FROM pg_trigger t
        WHERE t.tgrelid = target AND NOT t.tgisinternal
          AND t.tgfoid = ANY(realtime_trigger_functions())
        ORDER BY t.tgname
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, target);
    END LOOP;
END;
$$;

-- Watches a table with v4, replacing whatever version watched it; nothing to do (and no
-- lock taken) when v4 alone watches it already, so a role with only the TRIGGER privilege
-- (dropping a trigger needs the owner) can run it again.
CREATE OR REPLACE FUNCTION realtime_watch_v4(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    IF (SELECT array_agg(DISTINCT w.trigger_function) FROM realtime_watched_tables() w
        WHERE w.target = $1) = ARRAY['realtime_notify_v4()'::regprocedure]
       AND (SELECT count(*) FROM pg_trigger t
            WHERE t.tgrelid = $1 AND t.tgfoid = 'realtime_notify_v4()'::regprocedure) = 3
    THEN
        RETURN;
    END IF;
    PERFORM realtime_unwatch_v4(target);
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s TABLE AS changed_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION realtime_notify_v4()',
            'realtime_notify_v4_' || op, upper(op), target,
            CASE op WHEN 'delete' THEN 'OLD' ELSE 'NEW' END
        );
    END LOOP;
END;
$$;

-- The older versions' watch and unwatch functions (sql/003-006), which scripts may still
-- call, all go through realtime_unwatch_v3(): now it drops v4's triggers too. (Migration
-- 0012 puts sql/005's definition back on reverse.)
CREATE OR REPLACE FUNCTION realtime_unwatch_v3(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM realtime_unwatch_v4(target);
END;
$$;

-- The STATE event of an acknowledgement (sql/006's realtime_state_changed_v1(), with the
-- helpers).
CREATE OR REPLACE FUNCTION realtime_state_changed_v2() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    violation_table text;
    violation_id    bigint;
    kind_schema     text;
    row_data        json;
    event_id        bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        violation_table := OLD.table_name;
        violation_id := OLD.violation_id;
    ELSE
        violation_table := NEW.table_name;
        violation_id := NEW.violation_id;
    END IF;
    SELECT k.schema_name INTO kind_schema FROM realtime_kind k WHERE k.table_name = violation_table;
    IF NOT FOUND THEN
        RETURN NULL;  -- not a kind of violation (any more): no screen shows it
    END IF;
    EXECUTE format('SELECT row_to_json(v) FROM %I.%I v WHERE v.id = $1', kind_schema, violation_table)
        INTO row_data USING violation_id;
    IF row_data IS NULL THEN
        row_data := json_build_object('id', violation_id);
    END IF;

    INSERT INTO realtime_event (table_name, op, data)
    VALUES (violation_table, 'STATE', row_data)
    RETURNING id INTO event_id;

    IF realtime_notify_has_room() THEN
        PERFORM realtime_notify_change(
            event_id, violation_table, 'STATE', NULL, extract(epoch FROM clock_timestamp())
        );
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS realtime_state_v1 ON realtime_acknowledgement;
CREATE OR REPLACE TRIGGER realtime_state_v2
AFTER INSERT OR UPDATE OR DELETE ON realtime_acknowledgement
FOR EACH ROW EXECUTE FUNCTION realtime_state_changed_v2();
