from django.db import migrations

from realtime.sql_files import RunSQLFile


class Migration(migrations.Migration):
    """How far the event log has been pruned (sql/010): the stream-reset's rule."""

    dependencies = [("realtime", "0019_post_watch_v5")]

    operations = [
        RunSQLFile("010_pruned_log.sql", reverse_sql="DROP TABLE realtime_log_pruned;")
    ]
