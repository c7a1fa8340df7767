-- Shelved cameras: which violations a shelf covers, one rule for every reader.
--
-- An operator shelves a camera until a chosen time (realtime_shelf, created by migration
-- 0015). Its violations in that time are still recorded and listed, marked shelved, but
-- make no sound and are not counted. A violation is covered by its own date and time, the
-- plant's local time as the detector wrote it, read in the shelf's time_zone, from
-- shelved_at until ended_at (ended early) or until:
--
--     realtime_shelved(camera_id, violation_date + violation_time)   a kind's table
--     realtime_shelved_json(data)                                     a change in the log
--     realtime_shelves_covering(camera_id, date + time)                which, for a detail
--
-- so a row is shelved or not alike live, after a reload, in the counters and the detail.
--
-- Run by migration 0015; a DBA can run it with:  psql -f sql/008_shelves.sql

-- The shelves that cover a violation of `camera` at `local_time`. Plain SQL functions: the
-- planner inlines them into the query that calls them.
CREATE OR REPLACE FUNCTION realtime_shelves_covering(camera bigint, local_time timestamp)
RETURNS SETOF realtime_shelf
LANGUAGE sql
STABLE
AS $$
    SELECT s.* FROM realtime_shelf s
    WHERE s.camera_id = camera
      AND local_time AT TIME ZONE s.time_zone >= s.shelved_at
      AND local_time AT TIME ZONE s.time_zone < coalesce(s.ended_at, s.until)
$$;

CREATE OR REPLACE FUNCTION realtime_shelved(camera bigint, local_time timestamp)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT EXISTS (SELECT 1 FROM realtime_shelves_covering(camera, local_time))
$$;

-- The same for a row as row_to_json() wrote it into the event log. Anything that is not
-- a camera number, an ISO date and an ISO time is not shelved (and no error: a change that
-- cannot be read this way still reaches every screen).
CREATE OR REPLACE FUNCTION realtime_shelved_json(data json)
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    camera text := data->>'camera_id';
    day    text := data->>'violation_date';
    moment text := data->>'violation_time';
BEGIN
    IF NOT coalesce(
        camera ~ '^[0-9]{1,18}$'
        AND day ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
        AND moment ~ '^[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$',
        false
    ) THEN
        RETURN false;
    END IF;
    -- Most cameras were never shelved: no date arithmetic for them.
    IF NOT EXISTS (SELECT 1 FROM realtime_shelf s WHERE s.camera_id = camera::bigint) THEN
        RETURN false;
    END IF;
    BEGIN
        RETURN realtime_shelved(camera::bigint, day::date + moment::time);
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
        RETURN false;  -- 2025-02-30, 25:00:00
    END;
END;
$$;
