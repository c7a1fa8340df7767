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
        migrations.RunSQL(
            [f"SELECT realtime_watch_v1('{table}')" for table in WATCHED],
            reverse_sql=[f"SELECT realtime_unwatch_v1('{table}')" for table in WATCHED],
        ),
    ]
