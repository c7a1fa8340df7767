import importlib

from django.db import migrations

# Every kind's table, and every other table the product watches: migration 0013's queries.
watch_v4 = importlib.import_module("realtime.migrations.0013_watch_v4")

WATCHED_BY_V5 = """
SELECT DISTINCT w.target::text FROM realtime_watched_tables() w
WHERE w.trigger_function = 'realtime_notify_v5()'::regprocedure ORDER BY 1
"""


class Migration(migrations.Migration):
    """Step 2 of 2 (see 0018): every kind's table, and every other table an older version
    watched, is watched by trigger v5 where the product's role may drop the old triggers;
    elsewhere the older version stays (its search path is pinned all the same), with a
    message and a warning from `manage.py check` (realtime.W003).

    On reverse, back to v4.
    """

    dependencies = [("realtime", "0018_pre_trigger_v5")]

    operations = [
        migrations.RunPython(
            watch_v4.rewatch(watch_v4.ALL_TABLES, "realtime_watch_v5"),
            watch_v4.rewatch(WATCHED_BY_V5, "realtime_watch_v4"),
        )
    ]
