from django.db import migrations

from realtime.sql_files import RunSQLFile, function_definition

# Step 1 of 2: trigger v5 (sql/009). Every SECURITY DEFINER function of the product, of
# every version, gets a search path that ends with pg_temp (issue 22, finding 1); the log
# gains old_data, which realtime_changes() and realtime_changes_after() return as a last
# column (code from before this migration selects its columns by name and runs unchanged
# on it). Upgrade servers and listeners, then migrate on to 0019, which moves every
# watched table to v5.
#
# On reverse: sql/005's realtime_changes() and sql/007's realtime_changes_after() and
# realtime_trigger_functions() as they were, v5's functions and old_data gone. The pinned
# search paths stay: unpinning them would open the hole again.
UNDO_009 = f"""
DROP FUNCTION realtime_watch_v5(regclass);
DROP FUNCTION realtime_unwatch_v5(regclass);
DROP FUNCTION realtime_changes(bigint, bigint, bigint[]);
{function_definition("005_statement_log_rows.sql", "realtime_changes")}
DROP FUNCTION realtime_changes_after(bigint, integer, text[], text);
{function_definition("007_trigger_v4.sql", "realtime_changes_after")}
{function_definition("007_trigger_v4.sql", "realtime_trigger_functions")}
DROP FUNCTION realtime_notify_v5();
DROP FUNCTION realtime_pin_search_path(regprocedure);
ALTER TABLE realtime_event DROP COLUMN old_data;
"""


class Migration(migrations.Migration):
    dependencies = [("realtime", "0017_sites")]

    operations = [RunSQLFile("009_trigger_v5.sql", reverse_sql=UNDO_009)]
