import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection
from psycopg import sql

from realtime.violations import adoption, contract, kinds


class Command(BaseCommand):
    help = (
        "Create the indexes the live table's pages and counters need on every kind's table, "
        "with CREATE INDEX CONCURRENTLY (the detectors keep writing meanwhile). Opt-in: the "
        "tables belong to the detectors. --sql prints the statements for their owner instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sql", action="store_true", help="print the SQL, run nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        todo: list[tuple[adoption.Table, str, str]] = []  # table, index, state
        with connection.cursor() as cursor:
            for kind in kinds.load():
                table = adoption.find_table(cursor, kind.table, kind.schema)
                if table is None:
                    raise CommandError(f"The table of the kind {kind.slug!r} does not exist.")
                for index, state in adoption.index_states(cursor, table).items():
                    if state != "valid":
                        todo.append((table, index, state))
        statements = [(table, _statements(table, index, state)) for table, index, state in todo]
        for table in {table.oid: table for table, _, _ in todo}.values():
            statements.append((table, [_analyse(table)]))
        if options["sql"]:
            for _, sqls in statements:
                for statement in sqls:
                    self.stdout.write(statement + ";")
            return
        if not todo:
            self.stdout.write("Every kind's table has its indexes.")
            return
        not_owned = [table for table, _ in statements if not _owns(table)]
        if not_owned:
            names = ", ".join(sorted({table.qualified for table in not_owned}))
            raise CommandError(
                f"Only a table's owner may index it, and this role does not own {names}. "
                "Give its owner the statements of: python manage.py create_indexes --sql"
            )
        for table, sqls in statements:
            for statement in sqls:
                started = time.monotonic()
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(statement)
                except DatabaseError as exc:
                    raise CommandError(f"{table.qualified}: {str(exc).strip()}") from exc
                self.stdout.write(f"{statement} ({time.monotonic() - started:.1f} s)")


def _statements(table: adoption.Table, index: str, state: str) -> list[str]:
    spec = next(spec for spec in contract.INDEXES if spec.name(table.name) == index)
    drop = []
    if state == "invalid":  # an earlier build that failed half way
        drop = [f"DROP INDEX CONCURRENTLY {sql.Identifier(table.schema, index).as_string()}"]
    return [*drop, spec.create_sql(table)]


def _analyse(table: adoption.Table) -> str:
    # Statistics of the indexes' expressions: without them the planner takes the counters'
    # window for a third of the table (autovacuum analyses only after much of it changed).
    return f"ANALYZE {table.qualified}"


def _owns(table: adoption.Table) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, %s::regrole, 'USAGE')",
            [sql.Identifier(table.owner).as_string()],
        )
        return bool(cursor.fetchone()[0])
