-- How far the event log has been pruned (realtime/retention.py raises it as it deletes).
--
-- A client resuming from a position below it missed changes the log no longer holds, and
-- is sent a stream-reset (docs/guarantees.md, promise 4). Telling that from the log alone
-- ("the oldest id left is above the client's") took the ids of transactions still
-- running, which are not visible yet, for pruned ones: a client of an empty log whose
-- next change committed late was reset for nothing (issue 22, finding 7).
--
-- Delete old events with the product's pruning (the listener's side task, or
-- `manage.py prune_events`), not by hand: a hand-made DELETE does not raise it.
--
-- Run by migration 0020; a DBA can run it with:  psql -f sql/010_pruned_log.sql

CREATE TABLE IF NOT EXISTS realtime_log_pruned (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    through  bigint  NOT NULL
);

-- A log pruned before this table existed: pruned below its oldest change.
INSERT INTO realtime_log_pruned (through)
SELECT least(
    (SELECT min(id) FROM realtime_event WHERE ids IS NULL),
    (SELECT min(first_id) FROM realtime_event WHERE ids IS NOT NULL)
) - 1
WHERE EXISTS (SELECT 1 FROM realtime_event)
ON CONFLICT (only_row) DO NOTHING;
