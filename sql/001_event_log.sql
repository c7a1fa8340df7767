-- The event log: every change to a watched table, appended by the trigger inside the
-- writer's own transaction. Its ids are durable: the listener catches up from it after
-- a reconnect, SSE clients resume from it with Last-Event-ID, and rows too big for a
-- NOTIFY payload travel by id.
--
-- Run by the Django migrations; a DBA can run it with:  psql -f sql/001_event_log.sql

CREATE TABLE IF NOT EXISTS realtime_event (
    id         bigserial   PRIMARY KEY,
    table_name text        NOT NULL,
    op         text        NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    -- json, not jsonb: the row exactly as row_to_json() gives it (column order kept).
    data       json        NOT NULL,
    -- The writer's transaction id: the listener's catch-up scans by it, because ids
    -- are taken at INSERT time but transactions commit in another order.
    xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- When the row was written (not when its transaction began): lag is measured from it.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS realtime_event_xid_idx ON realtime_event (xid);
-- Pruning by age; BRIN because created_at only grows and the index stays tiny.
CREATE INDEX IF NOT EXISTS realtime_event_created_at_idx
    ON realtime_event USING brin (created_at);

-- Where the active listener's catch-up resumes (shared, so a standby that takes over
-- starts where the dead one stopped), who it is, when it last showed signs of life and
-- the newest event id it had forwarded then (for /healthz).
CREATE TABLE IF NOT EXISTS realtime_listener_state (
    name         text        PRIMARY KEY,
    scan_from    xid8        NOT NULL,
    holder       text        NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    forwarded_id bigint      NOT NULL DEFAULT 0
);
