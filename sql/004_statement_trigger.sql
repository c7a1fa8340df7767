-- realtime_notify_v2(): the trigger runs once per statement, not once per row.
--
-- What it does is what realtime_notify_v1() (002_notify_function.sql) did for each row,
-- done set-wise over the statement's transition table `changed_rows`:
--
-- 1. Appends every changed row to realtime_event with one INSERT ... SELECT.
-- 2. NOTIFYs channel realtime_changed_v1:
--    - up to 100 rows: one notification per row, exactly as v1:
--      {"id", "table", "op", "data", "written_at"}, "data" left out at 8000 bytes;
--    - more rows: one notification for the statement,
--      {"table", "op", "first_id", "last_id", "rows", "xid", "written_at"}; the listener
--      reads the rows from the log (ids first_id..last_id written by transaction xid).
--    A plpgsql call, an INSERT and a NOTIFY per row made a 10,000-row statement 12x
--    slower than on an unwatched table (docs/performance.md).
--
-- As in v1, the writer's statement never fails because of the notification, and the
-- NOTIFY is skipped while the queue is more than realtime.notify_queue_limit full (the
-- listener's catch-up delivers from the log).
--
-- A transition table needs one trigger per event: realtime_watch_v2() creates three,
-- realtime_notify_v2_insert, _update (NEW TABLE) and _delete (OLD TABLE), each naming
-- its transition table changed_rows.
--
-- SECURITY DEFINER: detectors' roles need no rights on realtime_event.
-- Run by the Django migrations; a DBA can run it with:  psql -f sql/004_statement_trigger.sql
--     SELECT realtime_watch_v2('violation_humandetections');
--     SELECT realtime_unwatch_v2('myschema.my_table');

CREATE OR REPLACE FUNCTION realtime_notify_v2() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    per_row_max CONSTANT int := 100;
    written_at  float8 := extract(epoch FROM clock_timestamp());
    notify      boolean := pg_notification_queue_usage()
        < coalesce(nullif(current_setting('realtime.notify_queue_limit', true), '')::float8, 0.5);
    row_count   bigint;
    first_id    bigint;
    last_id     bigint;
    logged      record;
    payload     text;
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

    WITH appended AS (
        INSERT INTO realtime_event (table_name, op, data)
        SELECT TG_TABLE_NAME, TG_OP, row_to_json(r) FROM changed_rows r
        RETURNING id
    )
    SELECT min(id), max(id) INTO first_id, last_id FROM appended;
    IF notify THEN
        PERFORM pg_notify('realtime_changed_v1', json_build_object(
            'table', TG_TABLE_NAME, 'op', TG_OP, 'first_id', first_id, 'last_id', last_id,
            'rows', row_count, 'xid', pg_current_xact_id()::text, 'written_at', written_at
        )::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION realtime_watch_v2(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    -- Replaces the per-row trigger of v1 where it is attached.
    EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v1 ON %s', target);
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER realtime_notify_v2_%s AFTER %s ON %s '
            'REFERENCING %s TABLE AS changed_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION realtime_notify_v2()',
            op, upper(op), target, CASE op WHEN 'delete' THEN 'OLD' ELSE 'NEW' END
        );
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION realtime_unwatch_v2(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v2_%s ON %s', op, target);
    END LOOP;
    EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v1 ON %s', target);
END;
$$;
