"""System checks of the detectors' tables: run by `migrate` before it changes anything,
and by `check` (which this project makes check the database too)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core import checks
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from realtime.violations import adoption, contract


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
    yield from _definer_functions(cursor)
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


# The product's SECURITY DEFINER functions (they run as their owner) whose search path
# does not end with pg_temp: PostgreSQL then looks for tables in the caller's temporary
# schema first (sql/009).
UNPINNED_SQL = """
SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE p.prosecdef AND p.proname LIKE 'realtime\\_%'
  AND p.pronamespace = current_schema()::regnamespace
  AND NOT coalesce(
      format('search_path=pg_catalog, %I, pg_temp', current_schema()) = ANY(p.proconfig), false)
ORDER BY 1
"""
# Roles other than its owner that may CREATE in the product's schema (PUBLIC included):
# they could add an overload that a SECURITY DEFINER function would call.
SCHEMA_CREATORS_SQL = """
SELECT coalesce(nullif(a.grantee::regrole::text, '-'), 'PUBLIC')
FROM pg_namespace n, aclexplode(n.nspacl) a
WHERE n.nspname = current_schema() AND a.privilege_type = 'CREATE'
  AND a.grantee <> n.nspowner
  AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.grantee AND r.rolsuper)
ORDER BY 1
"""


def _definer_functions(cursor: Any) -> Iterator[checks.CheckMessage]:
    if not _exists_function(cursor, "realtime_pin_search_path(regprocedure)"):
        return  # before migration 0018, which pins every one of them
    cursor.execute(UNPINNED_SQL)
    for (function,) in cursor.fetchall():
        yield checks.Error(
            f"{function} runs as its owner and searches the caller's temporary schema first: "
            "any role that can fire it can run SQL as its owner.",
            hint=f"SELECT realtime_pin_search_path('{function}');",
            id="realtime.E003",
        )
    cursor.execute(SCHEMA_CREATORS_SQL)
    creators = [row[0] for row in cursor.fetchall()]
    if creators:
        cursor.execute("SELECT quote_ident(current_schema())")
        schema = cursor.fetchone()[0]
        yield checks.Warning(
            f"Roles other than its owner may create objects in the schema {schema} "
            f"({', '.join(creators)}), where the product's functions that run as their owner "
            "look for what they call.",
            hint=f"REVOKE CREATE ON SCHEMA {schema} FROM {', '.join(creators)};",
            id="realtime.W005",
        )


def _exists_function(cursor: Any, signature: str) -> bool:
    cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [signature])
    return bool(cursor.fetchone()[0])


def _kind_tables(cursor: Any) -> Iterator[tuple[str, adoption.Table | None]]:
    """Every kind's table; before migration 0008, the built-in ones that exist."""
    if _exists(cursor, "realtime_kind"):
        cursor.execute(
            "SELECT slug, schema_name, table_name FROM realtime_kind ORDER BY position, slug"
        )
        for slug, schema, name in cursor.fetchall():
            yield slug, adoption.find_table(cursor, name, schema)
        return
    for name in contract.BUILT_IN_TABLES:
        table = adoption.find_table(cursor, name)
        if table is not None:  # missing ones are created by migration 0001
            yield name, table


def _exists(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    return bool(cursor.fetchone()[0])
