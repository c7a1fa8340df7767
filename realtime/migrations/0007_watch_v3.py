from django.db import migrations


def rewatch(triggers: list[str], watch: str) -> str:
    """SQL: every table carrying one of these triggers is watched with `watch` instead."""
    names = ", ".join(f"'{name}'" for name in triggers)
    return f"""
DO $$
DECLARE
    target regclass;
BEGIN
    FOR target IN
        SELECT DISTINCT tgrelid::regclass FROM pg_trigger WHERE tgname IN ({names})
    LOOP
        PERFORM {watch}(target);
    END LOOP;
END;
$$;
"""


def statement_triggers(version: int) -> list[str]:
    return [f"realtime_notify_v{version}_{op}" for op in ("insert", "update", "delete")]


class Migration(migrations.Migration):
    """Step 2 of 2 (see 0006): every table watched by v1 or v2 moves to trigger v3.

    On reverse, back to v2: statement rows already written stay, this version's code
    reads them, and 0006's reverse unpacks them.
    """

    dependencies = [("realtime", "0006_statement_log_rows")]

    operations = [
        migrations.RunSQL(
            rewatch(["realtime_notify_v1", *statement_triggers(2)], "realtime_watch_v3"),
            reverse_sql=rewatch(statement_triggers(3), "realtime_watch_v2"),
        )
    ]
