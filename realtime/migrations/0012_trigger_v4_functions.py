from django.db import migrations

from realtime.sql_files import RunSQLFile, function_definition

# Step 1 of 2: trigger v4 (sql/007): v3 written with the helper functions of sql/007, and
# nothing attaches it yet. The changes, the log rows and the NOTIFY payloads are v3's, so
# code from before this migration runs unchanged on it. Upgrade servers and listeners
# (they read realtime_log_window()), then migrate on to 0013, which moves every watched
# table to v4.
#
# On reverse: sql/006's STATE trigger, sql/005's realtime_unwatch_v3() and
# realtime_changes_after() as they were, and the new functions gone.
UNDO_007 = f"""
DROP TRIGGER realtime_state_v2 ON realtime_acknowledgement;
CREATE TRIGGER realtime_state_v1
AFTER INSERT OR UPDATE OR DELETE ON realtime_acknowledgement
FOR EACH ROW EXECUTE FUNCTION realtime_state_changed_v1();
DROP FUNCTION realtime_state_changed_v2();
{function_definition("005_statement_log_rows.sql", "realtime_unwatch_v3")}
{function_definition("005_statement_log_rows.sql", "realtime_changes_after")}
DROP FUNCTION realtime_watch_v4(regclass);
DROP FUNCTION realtime_unwatch_v4(regclass);
DROP FUNCTION realtime_watched_tables();
DROP FUNCTION realtime_trigger_functions();
DROP FUNCTION realtime_notify_v4();
DROP FUNCTION realtime_notify_statement(text, text, bigint, bigint, bigint, float8);
DROP FUNCTION realtime_notify_change(bigint, text, text, json, float8);
DROP FUNCTION realtime_notify_has_room();
DROP FUNCTION realtime_log_window();
"""


class Migration(migrations.Migration):
    dependencies = [("realtime", "0011_rename_event_eventlogrow")]

    operations = [RunSQLFile("007_trigger_v4.sql", reverse_sql=UNDO_007)]
