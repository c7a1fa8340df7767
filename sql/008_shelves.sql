-- Shelved cameras: which violations a shelf covers, one rule for every reader.
--
-- An operator shelves a camera until a chosen time (realtime_shelf, created by migration
-- 0015). Its violations in that time are still recorded and listed, marked shelved, but
-- make no sound and are not counted. A violation is covered by its own date and time, the
-- plant's local time as the detector wrote it, read in the shelf's time_zone, from
-- shelved_at until ended_at (ended early) or until:
--
--     realtime_shelves_covering(camera_id, violation_date + violation_time)
--
-- the shelves that cover a violation: the pages and counters ask EXISTS of it for each row
-- of a kind's table (realtime/violations.py), the listener's read of the log for each
-- change (realtime/eventlog.py), a violation's detail which they are. So a row is shelved
-- or not alike live, after a reload, in the counters and in the detail.
--
-- Run by migration 0015; a DBA can run it with:  psql -f sql/008_shelves.sql

-- The shelves that cover a violation of `camera` at `local_time`. A plain SQL function:
-- the planner inlines it into the query that calls it (an index scan of realtime_shelf).
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
