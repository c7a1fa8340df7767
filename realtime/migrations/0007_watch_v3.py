from django.db import migrations

# Step 2 of 2 (see 0006): every table watched by v1 or v2 moves to trigger v3; on
# reverse, back to v2 (statement rows already written stay, and this version's code
# reads them; 0006's reverse unpacks them).
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
        PERFORM realtime_watch_v2(target);
    END LOOP;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("realtime", "0006_statement_log_rows")]

    operations = [migrations.RunSQL(UPGRADE, reverse_sql=DOWNGRADE)]
