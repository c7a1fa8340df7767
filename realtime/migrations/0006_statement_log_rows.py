from django.db import migrations

from realtime.sql_files import RunSQLFile, read_sql

# Step 1 of 2: the log learns the statement rows of trigger v3 (columns, indexes, the
# functions that read them, trigger v3 itself), and nothing writes them yet: code from
# before this migration runs unchanged on it. Upgrade servers and listeners to code that
# reads both formats, then migrate on to 0007, which switches the triggers to v3.
#
# On reverse, statement rows are unpacked into one row per change (the only format older
# code reads) before the columns go, and the v1/v2 functions that sql/005 redefined get
# their own definitions back.
UNPACK_AND_DROP = """
WITH packed AS (
    DELETE FROM realtime_event WHERE ids IS NOT NULL
    RETURNING table_name, op, data, xid, created_at, ids
)
INSERT INTO realtime_event (id, table_name, op, data, xid, created_at)
SELECT c.id, p.table_name, p.op, c.data, p.xid, p.created_at
FROM packed p, ROWS FROM (unnest(p.ids), json_array_elements(p.data)) AS c (id, data);
DROP FUNCTION realtime_watch_v3(regclass);
DROP FUNCTION realtime_unwatch_v3(regclass);
DROP FUNCTION realtime_notify_v3();
DROP FUNCTION realtime_changes_after(bigint, integer, text[], text);
DROP FUNCTION realtime_changes(bigint, bigint, bigint[]);
DROP INDEX realtime_event_statement_idx;
DROP INDEX realtime_event_statement_first_idx;
ALTER TABLE realtime_event DROP COLUMN ids, DROP COLUMN first_id;
"""


class Migration(migrations.Migration):
    dependencies = [("realtime", "0005_statement_trigger")]

    operations = [
        # Runs last on reverse: the watch functions of v1 and v2 as they were.
        migrations.RunSQL(
            migrations.RunSQL.noop,
            reverse_sql=read_sql("003_watch_functions.sql") + read_sql("004_statement_trigger.sql"),
        ),
        RunSQLFile("005_statement_log_rows.sql", reverse_sql=UNPACK_AND_DROP),
    ]
