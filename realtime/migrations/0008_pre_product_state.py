"""Step 1 of 2: the product's own state in its own tables (docs/decisions/009-the-detectors-own-their-tables.md).

- realtime_kind: the kinds of violation, the three built-in ones first (their tables were
  created or adopted by 0001); `manage.py add_kind` adds more.
- realtime_acknowledgement: who acknowledged which violation, keyed by (table, id), with
  the acknowledgements that older versions kept in columns of the tables the product
  created copied in.
- sql/006: acknowledgements travel through the event log as STATE events.
- Every kind's table is watched from migration 0013 on, by the trigger of that time (a
  database migrated before this version is watched already).

Code of the previous version runs on this (it still writes the old columns, and 0009
copies what it wrote meanwhile); upgrade every server, then migrate on to 0009, which
drops the old columns.
"""

import django.core.validators
from django.core.management.base import CommandError
from django.db import migrations, models

import realtime.violations.adoption
from realtime.sql_files import RunSQLFile

BUILT_IN_KINDS = [
    # slug, label, table, colour, position
    ("human", "Person in zone", "violation_humandetections", "#b02a37", 10),
    ("loto", "LOTO", "violation_lotodetections", "#8a4b08", 20),
    ("ppe", "PPE", "violation_ppedetections", "#205067", 30),
]

UNDO_006 = """
DROP TRIGGER realtime_state_v1 ON realtime_acknowledgement;
DROP FUNCTION realtime_state_changed_v1();
DELETE FROM realtime_event WHERE op = 'STATE';
ALTER TABLE realtime_event DROP CONSTRAINT realtime_event_op_check;
ALTER TABLE realtime_event ADD CONSTRAINT realtime_event_op_check
    CHECK (op IN ('INSERT', 'UPDATE', 'DELETE'));
"""


def add_built_in_kinds(apps, schema_editor):
    ViolationKind = apps.get_model("realtime", "ViolationKind")
    with schema_editor.connection.cursor() as cursor:
        for slug, label, table_name, colour, position in BUILT_IN_KINDS:
            table = realtime.violations.adoption.find_table(cursor, table_name)
            if table is not None:
                ViolationKind.objects.create(
                    slug=slug,
                    label=label,
                    schema_name=table.schema,
                    table_name=table.name,
                    colour=colour,
                    position=position,
                )


def copy_acknowledgements(apps, schema_editor):
    """From the columns of older versions, on the tables the product created."""
    with schema_editor.connection.cursor() as cursor:
        for table_name in sorted(realtime.violations.adoption.created_tables(cursor)):
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
                " AND attname = 'acknowledged_at' AND NOT attisdropped)",
                [table_name],
            )
            if not cursor.fetchone()[0]:
                continue
            table = schema_editor.quote_name(table_name)
            cursor.execute(
                "INSERT INTO realtime_acknowledgement"
                " (table_name, violation_id, acknowledged_by, acknowledged_at)"
                f" SELECT %s, id, acknowledged_by, acknowledged_at FROM {table}"
                " WHERE acknowledged_at IS NOT NULL"
                " ON CONFLICT (table_name, violation_id) DO NOTHING",
                [table_name],
            )


def refuse_to_lose_acknowledgements(apps, schema_editor):
    """Backwards: acknowledgements of adopted tables have nowhere to go in older versions."""
    with schema_editor.connection.cursor() as cursor:
        created = sorted(realtime.violations.adoption.created_tables(cursor))
        cursor.execute(
            "SELECT table_name, count(*) FROM realtime_acknowledgement"
            " WHERE NOT table_name = ANY(%s) GROUP BY table_name ORDER BY table_name",
            [created],
        )
        kept = cursor.fetchall()
    if kept:
        counts = ", ".join(f"{count} of {table}" for table, count in kept)
        raise CommandError(
            f"Going back would lose acknowledgements ({counts}): older versions keep them "
            "in columns of the detectors' tables, which the product may not add to tables it "
            "did not create. Delete them first if that is what you want."
        )


class Migration(migrations.Migration):
    dependencies = [("realtime", "0007_watch_v3")]

    operations = [
        migrations.CreateModel(
            name="ViolationKind",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slug", models.SlugField(help_text="In URLs: /?kind=SLUG", max_length=40, unique=True)),
                ("label", models.CharField(help_text="The badge on each row", max_length=60)),
                ("schema_name", models.CharField(max_length=63)),
                ("table_name", models.CharField(max_length=63, unique=True)),
                (
                    "colour",
                    models.CharField(
                        default="#666666",
                        help_text="The badge's background, like #b02a37 (its text is white)",
                        max_length=7,
                        validators=[django.core.validators.RegexValidator("^#[0-9a-fA-F]{6}$", "A colour like #b02a37")],
                    ),
                ),
                ("position", models.PositiveSmallIntegerField(default=100, help_text="Order on the page")),
            ],
            options={
                "verbose_name": "kind of violation",
                "verbose_name_plural": "kinds of violation",
                "db_table": "realtime_kind",
                "ordering": ["position", "slug"],
            },
        ),
        migrations.CreateModel(
            name="Acknowledgement",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("table_name", models.CharField(max_length=63)),
                ("violation_id", models.BigIntegerField()),
                ("acknowledged_by", models.CharField(max_length=150)),
                ("acknowledged_at", models.DateTimeField()),
            ],
            options={
                "db_table": "realtime_acknowledgement",
                "ordering": ["-acknowledged_at"],
                "constraints": [
                    models.UniqueConstraint(fields=("table_name", "violation_id"), name="realtime_acknowledged_once")
                ],
            },
        ),
        migrations.RunPython(add_built_in_kinds, migrations.RunPython.noop),
        migrations.RunPython(copy_acknowledgements, refuse_to_lose_acknowledgements),
        RunSQLFile("006_product_state.sql", reverse_sql=UNDO_006),
    ]
