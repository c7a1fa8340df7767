"""Step 2 of 2 (see 0008): the acknowledgement columns go from the tables the product
created; acknowledgements are in realtime_acknowledgement alone. The models of the three
built-in tables stop being managed: Django never alters a detectors' table again.

Backwards, the columns come back on the tables the product created, filled from
realtime_acknowledgement.
"""

import importlib

from django.db import migrations

import realtime.violations.adoption
import realtime.violations.contract
from realtime.violations.adoption import RemoveFieldFromCreatedTable

MODELS = ["humandetection", "lotodetection", "ppedetection"]
OPTIONS = {
    "humandetection": ("person in restricted zone", "people in restricted zones"),
    "lotodetection": ("lock-out/tag-out breach", "lock-out/tag-out breaches"),
    "ppedetection": ("missing protective equipment", "missing protective equipment"),
}


def copy_acknowledgements(apps, schema_editor):
    # What servers of the previous version acknowledged since 0008 ran.
    step_1 = importlib.import_module("realtime.migrations.0008_pre_product_state")
    step_1.copy_acknowledgements(apps, schema_editor)


def copy_back(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table_name in sorted(realtime.violations.adoption.created_tables(cursor)):
            table = schema_editor.quote_name(table_name)
            cursor.execute(
                f"UPDATE {table} v SET acknowledged_by = a.acknowledged_by,"
                " acknowledged_at = a.acknowledged_at FROM realtime_acknowledgement a"
                " WHERE a.table_name = %s AND a.violation_id = v.id",
                [table_name],
            )


def index_empty_created_tables(apps, schema_editor):
    """The indexes of `create_indexes`, at once on a table the product has just created
    (empty, so building them locks nobody out); for the others it is an opt-in step."""
    with schema_editor.connection.cursor() as cursor:
        for table_name in sorted(realtime.violations.adoption.created_tables(cursor)):
            table = realtime.violations.adoption.find_table(cursor, table_name)
            if table is None:
                continue
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table.qualified})")
            if cursor.fetchone()[0]:
                continue
            for spec in realtime.violations.contract.INDEXES:
                statement = spec.create_sql(table).replace(" CONCURRENTLY ", " IF NOT EXISTS ")
                cursor.execute(statement)


def drop_product_indexes(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table_name in sorted(realtime.violations.adoption.created_tables(cursor)):
            table = realtime.violations.adoption.find_table(cursor, table_name)
            if table is None:
                continue
            for spec in realtime.violations.contract.INDEXES:
                name = schema_editor.quote_name(spec.name(table.name))
                cursor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(table.schema)}.{name}")


def options(model: str, managed: bool) -> dict:
    singular, plural = OPTIONS[model]
    return {
        "managed": managed,
        "ordering": ["-violation_date", "-violation_time", "-id"],
        "verbose_name": singular,
        "verbose_name_plural": plural,
    }


class Migration(migrations.Migration):
    dependencies = [("realtime", "0008_pre_product_state")]

    operations = [
        migrations.RunPython(copy_acknowledgements, copy_back),
        *[
            RemoveFieldFromCreatedTable(model_name=model, name=field)
            for model in MODELS
            for field in ("acknowledged_at", "acknowledged_by")
        ],
        *[
            migrations.AlterModelOptions(name=model, options=options(model, managed=False))
            for model in MODELS
        ],
        migrations.RunPython(index_empty_created_tables, drop_product_indexes),
    ]
