import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction
from psycopg import sql

from realtime.models import ViolationKind
from realtime.violations import adoption, kinds

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class Command(BaseCommand):
    help = (
        "Show the violations of a detectors' table as a kind of its own on the live table: "
        "add_kind fire violation_firedetections --label Fire. The table needs the columns "
        "id, camera_id, violation_date, violation_time and violation_image; the product only "
        "attaches its trigger to it. --remove SLUG undoes it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="short name, in URLs: /?kind=SLUG")
        parser.add_argument("table", nargs="?", help="the table, or schema.table")
        parser.add_argument("--label", help="the badge on each row (default: the slug)")
        parser.add_argument("--colour", default="#666666", help="the badge's colour, like #b02a37")
        parser.add_argument("--position", type=int, default=None, help="order on the page")
        parser.add_argument(
            "--remove", action="store_true", help="stop showing the kind (its table stays)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["remove"]:
            self._remove(options["slug"])
        else:
            self._add(options)
        kinds.forget()

    def _add(self, options: dict[str, Any]) -> None:
        slug, name = options["slug"], options["table"]
        if not name:
            raise CommandError("Name the table: add_kind SLUG TABLE --label LABEL")
        if SLUG.fullmatch(slug) is None:
            raise CommandError(
                "The slug is a short lower-case name (letters, digits, - and _), like fire."
            )
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", options["colour"]):
            raise CommandError("--colour is a colour like #b02a37.")
        if ViolationKind.objects.filter(slug=slug).exists():
            raise CommandError(f"There is a kind {slug!r} already.")
        with connection.cursor() as cursor:
            try:
                table = adoption.find_table(cursor, name)
            except DatabaseError as exc:  # to_regclass() refuses what is no name at all
                raise CommandError(
                    f"{name!r} is not a table name ({str(exc).strip()}): name it as TABLE or "
                    "SCHEMA.TABLE, quoted as in SQL where it needs quotes."
                ) from exc
            if table is None:
                raise CommandError(f"There is no table {name!r}.")
            problems = adoption.table_problems(cursor, table)
        if problems:
            raise CommandError(f"Cannot show {table.qualified}:\n{adoption.describe(problems)}")
        taken = ViolationKind.objects.filter(table_name=table.name).first()
        if taken is not None:
            # The event log names a table without its schema.
            raise CommandError(f"The kind {taken.slug!r} shows a table named {table.name} already.")
        position = options["position"]
        if position is None:
            last = ViolationKind.objects.order_by("-position").first()
            position = (last.position if last else 0) + 10
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                ViolationKind.objects.create(
                    slug=slug,
                    label=options["label"] or slug,
                    schema_name=table.schema,
                    table_name=table.name,
                    colour=options["colour"],
                    position=position,
                )
                cursor.execute(f"SELECT {adoption.WATCH_FUNCTION}(%s::oid::regclass)", [table.oid])
        except DatabaseError as exc:
            raise CommandError(f"{table.qualified}: {str(exc).strip()}") from exc
        self.stdout.write(
            f"Kind {slug} shows {table.qualified} (its trigger is attached). listen_notify "
            "takes it at once, servers within a few seconds. For fast pages on a big table: "
            "python manage.py create_indexes"
        )

    def _remove(self, slug: str) -> None:
        kind = ViolationKind.objects.filter(slug=slug).first()
        if kind is None:
            raise CommandError(f"There is no kind {slug!r}.")
        table = kind.schema_name + "." + kind.table_name
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                kind.delete()
                if adoption.find_table(cursor, kind.table_name, kind.schema_name) is not None:
                    cursor.execute(
                        f"SELECT {adoption.UNWATCH_FUNCTION}(to_regclass(%s))",
                        [sql.Identifier(kind.schema_name, kind.table_name).as_string()],
                    )
        except DatabaseError as exc:
            raise CommandError(
                f"{table}: {str(exc).strip()}\nDropping a trigger needs the table's owner; ask "
                f"them to run: SELECT {adoption.UNWATCH_FUNCTION}('{table}');"
            ) from exc
        self.stdout.write(f"Kind {slug} removed; {table} is no longer watched (its rows stay).")
