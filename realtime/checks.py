"""System checks of the detectors' tables: run by `migrate` before it changes anything,
and by `check` (which this project makes check the database too)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core import checks
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from realtime import adoption


@checks.register(checks.Tags.database)
def detectors_tables(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            return list(_messages(cursor))
    except DatabaseError as exc:
        return [
            checks.Warning(
                f"Could not check the detectors' tables: {str(exc).strip()}", id="realtime.W000"
            )
        ]


def _messages(cursor: Any) -> Iterator[checks.CheckMessage]:
    migrated = _exists(cursor, "realtime_event")
    for slug, table in _kind_tables(cursor):
        if table is None:
            yield checks.Error(
                f"The table of the kind {slug!r} does not exist.",
                hint="Create it, or stop showing the kind: python manage.py add_kind --remove "
                f"{slug}",
                id="realtime.E002",
            )
            continue
        for problem in adoption.table_problems(cursor, table):
            yield checks.Error(problem.message, hint=problem.hint or None, id="realtime.E001")
        if not migrated:
            continue
        if not adoption.is_watched(cursor, table):
            yield checks.Warning(
                f"{table.qualified} is not watched: its changes do not reach the screens.",
                hint="python manage.py migrate (or add_kind for a kind of your own) attaches the "
                "trigger.",
                id="realtime.W002",
            )
        older = adoption.older_trigger_functions(cursor, table)
        if older:
            yield checks.Warning(
                f"{table.qualified} is watched by an older version of the product's trigger "
                f"({', '.join(sorted(older))}), not by {adoption.TRIGGER_FUNCTION}: migration "
                "0013 could not replace it (dropping a trigger needs the table's owner).",
                hint="Ask the owner to run: "
                f"SELECT {adoption.WATCH_FUNCTION}('{table.qualified}');",
                id="realtime.W003",
            )
        missing = [
            i for i, state in adoption.index_states(cursor, table).items() if state != "valid"
        ]
        if missing:
            yield checks.Warning(
                f"{table.qualified} lacks the product's indexes {', '.join(missing)}: the live "
                "table's pages and counters read the whole table.",
                hint="python manage.py create_indexes (CREATE INDEX CONCURRENTLY: the detectors "
                "go on writing meanwhile).",
                id="realtime.W001",
            )
        for trigger, function in adoption.foreign_triggers(cursor, table).items():
            yield checks.Info(
                f"{table.qualified} has the trigger {trigger} ({function}), which is not the "
                "product's. It keeps working beside the product's triggers.",
                hint="Once nothing listens to what it sends, drop it: DROP TRIGGER "
                f"{trigger} ON {table.qualified};",
                id="realtime.I001",
            )


def _kind_tables(cursor: Any) -> Iterator[tuple[str, adoption.Table | None]]:
    """Every kind's table; before migration 0008, the built-in ones that exist."""
    if _exists(cursor, "realtime_kind"):
        cursor.execute(
            "SELECT slug, schema_name, table_name FROM realtime_kind ORDER BY position, slug"
        )
        for slug, schema, name in cursor.fetchall():
            yield slug, adoption.find_table(cursor, name, schema)
        return
    for name in adoption.BUILT_IN_TABLES:
        table = adoption.find_table(cursor, name)
        if table is not None:  # missing ones are created by migration 0001
            yield name, table


def _exists(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    return bool(cursor.fetchone()[0])
