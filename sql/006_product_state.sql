-- The product's own state of a violation travels through the event log.
--
-- The detectors' tables belong to the detectors (architecture decision 9): what the
-- product knows of a violation (who acknowledged it, and when) is kept in its own tables,
-- realtime_acknowledgement keyed by (table_name, violation_id), created by migration 0008.
-- Every change to it appends a STATE event to realtime_event, in the same transaction:
--
--     table_name  the violation's table (the bare name, as the change triggers write it)
--     op          'STATE'
--     data        the violation's row as it is now (row_to_json), or {"id": ...} when the
--                 row is gone
--
-- so that the screens re-draw the row, live and on replay, like any other event. Readers
-- join the current state (realtime/eventlog.py). A STATE event is not a change the
-- detectors made: the JSON streams that carry changes (/ws/violations/, data: of
-- /events/violations/) do not send it as one.
--
-- Also: realtime_watch_v3() returns at once, taking no lock, when the table already
-- carries v3's triggers (and no other version's); a role that may attach triggers to a
-- table it does not own (GRANT TRIGGER) can then run it again, which dropping needs the
-- owner for.
--
-- Run by migration 0008; a DBA can run it with:  psql -f sql/006_product_state.sql

ALTER TABLE realtime_event DROP CONSTRAINT IF EXISTS realtime_event_op_check;
ALTER TABLE realtime_event ADD CONSTRAINT realtime_event_op_check
    CHECK (op IN ('INSERT', 'UPDATE', 'DELETE', 'STATE')) NOT VALID;
-- Validating apart takes a lock that lets writers go on while the log is read.
ALTER TABLE realtime_event VALIDATE CONSTRAINT realtime_event_op_check;

CREATE OR REPLACE FUNCTION realtime_state_changed_v1() RETURNS trigger
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

    IF pg_notification_queue_usage()
       < coalesce(nullif(current_setting('realtime.notify_queue_limit', true), '')::float8, 0.5)
    THEN
        PERFORM pg_notify('realtime_changed_v1', json_build_object(
            'id', event_id, 'table', violation_table, 'op', 'STATE',
            'written_at', extract(epoch FROM clock_timestamp())
        )::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER realtime_state_v1
AFTER INSERT OR UPDATE OR DELETE ON realtime_acknowledgement
FOR EACH ROW EXECUTE FUNCTION realtime_state_changed_v1();

-- Watches a table with v3, replacing whatever version watched it; nothing to do (and no
-- lock taken) when v3 alone watches it already.
CREATE OR REPLACE FUNCTION realtime_watch_v3(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    op text;
BEGIN
    IF (SELECT count(*) FROM pg_trigger t
        WHERE t.tgrelid = target AND t.tgfoid = 'realtime_notify_v3()'::regprocedure
          AND t.tgname IN ('realtime_notify_v3_insert', 'realtime_notify_v3_update',
                           'realtime_notify_v3_delete')) = 3
       AND NOT EXISTS (
           SELECT 1 FROM pg_trigger t
           WHERE t.tgrelid = target
             AND t.tgname IN ('realtime_notify_v1', 'realtime_notify_v2_insert',
                              'realtime_notify_v2_update', 'realtime_notify_v2_delete'))
    THEN
        RETURN;
    END IF;
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
