from django.db import migrations

from realtime.sql_files import RunSQLFile

# Every table carrying the per-row trigger of v1 (the three of 0002, and any a DBA
# attached) moves to the statement triggers of v2, and back on reverse.
UPGRADE = """
DO $$
DECLARE
    target regclass;
BEGIN
    FOR target IN
        SELECT DISTINCT tgrelid::regclass FROM pg_trigger WHERE tgname = 'realtime_notify_v1'
    LOOP
        PERFORM realtime_watch_v2(target);
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
        WHERE tgname IN ('realtime_notify_v2_insert', 'realtime_notify_v2_update',
                         'realtime_notify_v2_delete')
    LOOP
        PERFORM realtime_unwatch_v2(target);
        PERFORM realtime_watch_v1(target);
    END LOOP;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("realtime", "0004_acknowledgement")]

    operations = [
        RunSQLFile(
            "004_statement_trigger.sql",
            reverse_sql=(
                "DROP FUNCTION realtime_watch_v2(regclass);"
                "DROP FUNCTION realtime_unwatch_v2(regclass);"
                "DROP FUNCTION realtime_notify_v2();"
            ),
        ),
        migrations.RunSQL(UPGRADE, reverse_sql=DOWNGRADE),
    ]
