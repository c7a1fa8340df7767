from django.db import migrations

from realtime.sql_files import RunSQLFile

WATCHED = ["violation_humandetections", "violation_lotodetections", "violation_ppedetections"]


class Migration(migrations.Migration):
    dependencies = [("realtime", "0001_initial")]

    operations = [
        RunSQLFile(
            "001_event_log.sql",
            reverse_sql="DROP TABLE realtime_listener_state; DROP TABLE realtime_event;",
        ),
        RunSQLFile("002_notify_function.sql", reverse_sql="DROP FUNCTION realtime_notify_v1();"),
        RunSQLFile(
            "003_watch_functions.sql",
            reverse_sql=(
                "DROP FUNCTION realtime_watch_v1(regclass);"
                "DROP FUNCTION realtime_unwatch_v1(regclass);"
            ),
        ),
        # The tables used to be watched with v1 here, then moved to v2 (0005) and v3 (0007):
        # three rounds of triggers on tables that may belong to the detectors. Migration
        # 0008 now watches every kind's table once, with the current version; a database
        # migrated before that keeps what these steps did (they are already applied).
        migrations.RunSQL(
            migrations.RunSQL.noop,
            reverse_sql=[f"SELECT realtime_unwatch_v1('{table}')" for table in WATCHED],
        ),
    ]
