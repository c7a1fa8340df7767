from django.db import DatabaseError, migrations, transaction

# Every kind's table, and every other table the product watches.
ALL_TABLES = """
SELECT to_regclass(format('%I.%I', k.schema_name, k.table_name))::text FROM realtime_kind k
WHERE to_regclass(format('%I.%I', k.schema_name, k.table_name)) IS NOT NULL
UNION
SELECT w.target::text FROM realtime_watched_tables() w
ORDER BY 1
"""
WATCHED_BY_V4 = """
SELECT DISTINCT w.target::text FROM realtime_watched_tables() w
WHERE w.trigger_function = 'realtime_notify_v4()'::regprocedure ORDER BY 1
"""


def rewatch(tables: str, watch: str):
    """The tables of the query `tables` are watched with `watch`, where the product's role
    may drop their old triggers (dropping a trigger needs the table's owner; the TRIGGER
    privilege only creates one). Elsewhere the old version stays, with a message (and a
    warning from `manage.py check`): v3 and v4 log and notify the same."""

    def run(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(tables)
            for (table,) in cursor.fetchall():
                try:
                    with transaction.atomic(using=schema_editor.connection.alias):
                        cursor.execute(f"SELECT {watch}(%s::regclass)", [table])
                except DatabaseError as exc:
                    if getattr(exc.__cause__, "sqlstate", None) != "42501":
                        raise
                    reason = str(exc).strip().splitlines()[0]
                    print(
                        f"\n  {table} keeps its older trigger ({reason}). Ask the table's owner"
                        f" to run: SELECT {watch}('{table}');"
                    )

    return run


class Migration(migrations.Migration):
    """Step 2 of 2 (see 0012): every kind's table is watched by trigger v4, and so is
    every other table an older version watched.

    On reverse, back to v3 (the same log rows and notifications).
    """

    dependencies = [("realtime", "0012_trigger_v4_functions")]

    operations = [
        migrations.RunPython(
            rewatch(ALL_TABLES, "realtime_watch_v4"),
            rewatch(WATCHED_BY_V4, "realtime_watch_v3"),
        )
    ]
