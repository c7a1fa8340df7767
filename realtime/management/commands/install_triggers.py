from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction

from realtime.violations import adoption


class Command(BaseCommand):
    help = (
        "Attach the realtime trigger (INSERT, UPDATE, DELETE) to existing tables, "
        f"as `SELECT {adoption.WATCH_FUNCTION}('table')` does in psql."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tables", nargs="+", metavar="TABLE", help="table, or schema.table")
        parser.add_argument(
            "--remove", action="store_true", help="detach the trigger instead of attaching it"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        function = adoption.UNWATCH_FUNCTION if options["remove"] else adoption.WATCH_FUNCTION
        for table in options["tables"]:
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"SELECT {function}(%s::regclass)", [table])
            except DatabaseError as exc:
                raise CommandError(f"{table}: {str(exc).strip()}") from exc
            verb = "detached from" if options["remove"] else "attached to"
            self.stdout.write(f"realtime trigger {verb} {table}")
