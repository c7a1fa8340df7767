-- One trigger function for every watched table (INSERT, UPDATE and DELETE).
--
-- 1. Appends the change to realtime_event (durable id).
-- 2. NOTIFYs channel realtime_changed_v1 with {"id", "table", "op", "data"}; "data"
--    is left out when the payload would reach NOTIFY's 8000-byte limit, and the
--    listener reads the row from the event log instead. "written_at" (epoch seconds)
--    is there for the listener's latency metrics.
--
-- It never makes the writer's statement fail because of the notification: no payload
-- is too long, and when the NOTIFY queue is more than half full (a listener stuck or
-- gone) it skips the NOTIFY, since a full queue fails the writer's COMMIT. The event
-- log still has the change; the listener's periodic catch-up delivers it. The limit is
-- the setting realtime.notify_queue_limit (default 0.5; tests set 0 to simulate a full
-- queue).
--
-- SECURITY DEFINER: detectors' roles need no rights on realtime_event.
-- Run by the Django migrations; a DBA can run it with:  psql -f sql/002_notify_function.sql

CREATE OR REPLACE FUNCTION realtime_notify_v1() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    row_data   json;
    event_id   bigint;
    payload    text;
    written_at float8 := extract(epoch FROM clock_timestamp());
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_data := row_to_json(OLD);
    ELSE
        row_data := row_to_json(NEW);
    END IF;

    INSERT INTO realtime_event (table_name, op, data)
    VALUES (TG_TABLE_NAME, TG_OP, row_data)
    RETURNING id INTO event_id;

    payload := json_build_object(
        'id', event_id, 'table', TG_TABLE_NAME, 'op', TG_OP, 'data', row_data,
        'written_at', written_at
    )::text;
    IF octet_length(payload) >= 8000 THEN
        payload := json_build_object(
            'id', event_id, 'table', TG_TABLE_NAME, 'op', TG_OP, 'written_at', written_at
        )::text;
    END IF;

    IF pg_notification_queue_usage()
       < coalesce(nullif(current_setting('realtime.notify_queue_limit', true), '')::float8, 0.5)
    THEN
        PERFORM pg_notify('realtime_changed_v1', payload);
    END IF;

    RETURN NULL;
END;
$$;
