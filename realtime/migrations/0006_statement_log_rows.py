from django.db import migrations

from realtime.sql_files import RunSQLFile

# Every table carrying the triggers of v2 (or still v1's) moves to the triggers of v3;
# on reverse they go back to v2, and the log's statement rows are unpacked into one row
# per change, the only format v2's readers know.
UPGRADE = """
DO $$
DECLARE
    target regclass;
BEGIN
    FOR target IN
        SELECT DISTINCT tgrelid::regclass FROM pg_trigger
        WHERE tgname IN ('realtime_notify_v1', 'realtime_notify_v2_insert',
                         'realtime_notify_v2_update', 'realtime_notify_v2_delete')
    LOOP
        PERFORM realtime_watch_v3(target);
    END LOOP;
END;
$$;
"""

DOWNGRADE = """
DO $$
DECLARE
    target regclass;
BEGIN
    FOR target IN
        SELECT DISTINCT tgrelid::regclass FROM pg_trigger
        WHERE tgname IN ('realtime_notify_v3_insert', 'realtime_notify_v3_update',
                         'realtime_notify_v3_delete')
    LOOP
        PERFORM realtime_unwatch_v3(target);
        PERFORM realtime_watch_v2(target);
    END LOOP;
END;
$$;
CREATE TEMPORARY TABLE realtime_unpacked ON COMMIT DROP AS
    SELECT c.id, e.table_name, e.op, c.data, e.xid, e.created_at
    FROM realtime_event e,
         ROWS FROM (unnest(e.ids), json_array_elements(e.data)) AS c (id, data)
    WHERE e.ids IS NOT NULL;
DELETE FROM realtime_event WHERE ids IS NOT NULL;
INSERT INTO realtime_event (id, table_name, op, data, xid, created_at)
    SELECT id, table_name, op, data, xid, created_at FROM realtime_unpacked;
DROP FUNCTION realtime_watch_v3(regclass);
DROP FUNCTION realtime_unwatch_v3(regclass);
DROP FUNCTION realtime_notify_v3();
DROP FUNCTION realtime_changes_after(bigint, integer, text[], text);
DROP FUNCTION realtime_changes(bigint, bigint);
DROP INDEX realtime_event_statement_idx;
ALTER TABLE realtime_event DROP COLUMN ids, DROP COLUMN first_id;
"""


class Migration(migrations.Migration):
    dependencies = [("realtime", "0005_statement_trigger")]

    operations = [
        RunSQLFile("005_statement_log_rows.sql", reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(UPGRADE, reverse_sql=DOWNGRADE),
    ]
