"""Adopting the detectors' tables as they are: what the product needs of one, and what it
may do to it (attach its triggers, nothing else:
docs/decisions/009-the-detectors-own-their-tables.md).

Used by the migrations (which create a table only where none exists), by `check` and
`migrate`'s own check (realtime.checks), by `add_kind` and by `create_indexes`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError
from django.db import migrations
from psycopg import sql

from realtime.violations.contract import (
    BUILT_IN_TABLES,
    INDEXES,
    REQUIRED_COLUMNS,
    TYPE_NAMES,
)

# The product's trigger as the migrations attach it (sql/009), and the functions that
# attach and detach it. The product's triggers of every version are told by the function
# they run (realtime_notify_v1() ... v5()), not by their names.
TRIGGER_FUNCTION = "realtime_notify_v5()"


WATCH_FUNCTION = "realtime_watch_v5"


UNWATCH_FUNCTION = "realtime_unwatch_v5"


PRODUCT_TRIGGER_FUNCTION = re.compile(r"(?:.+\.)?realtime_notify_v[0-9]+\(\)")


# Which detectors' tables the product created itself (migration 0001 where none existed):
# only those may ever be altered or dropped by a migration.
CREATED_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS realtime_created_table (
    table_name text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind
    owner: str

    @property
    def qualified(self) -> str:
        return sql.Identifier(self.schema, self.name).as_string()


@dataclass(frozen=True)
class Problem:
    table: str
    message: str
    hint: str = ""


def find_table(cursor: Any, name: str, schema: str | None = None) -> Table | None:
    """The table a name stands for (on the search path unless a schema is given)."""
    target = sql.Identifier(schema, name).as_string() if schema else name
    cursor.execute(
        "SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = to_regclass(%s)",
        [target],
    )
    row = cursor.fetchone()
    return None if row is None else Table(int(row[0]), row[1], row[2], row[3], row[4])


def table_problems(cursor: Any, table: Table) -> list[Problem]:
    """Why the product cannot adopt this table, in words an operator can act on."""
    name = table.qualified
    if table.kind not in ("r", "p"):
        return [Problem(name, f"{name} is not a table (a view or another kind of relation).")]
    problems = column_problems(cursor, table)
    problems += privilege_problems(cursor, table)
    return problems


def column_problems(cursor: Any, table: Table) -> list[Problem]:
    name = table.qualified
    cursor.execute(
        "SELECT a.attname, coalesce(base.typname, t.typname)"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_type base ON t.typtype = 'd' AND base.oid = t.typbasetype"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        [table.oid],
    )
    types = dict(cursor.fetchall())
    needed = ", ".join(REQUIRED_COLUMNS)
    problems = []
    for column, accepted in REQUIRED_COLUMNS.items():
        if column not in types:
            problems.append(
                Problem(
                    name,
                    f"{name} has no column {column}.",
                    f"The product reads the columns {needed} of each kind's table.",
                )
            )
        elif types[column] not in accepted:
            problems.append(
                Problem(
                    name,
                    f"{name}.{column} is of type {types[column]}; the product needs "
                    f"{TYPE_NAMES[column]}.",
                )
            )
    if "id" in types and not _id_is_unique(cursor, table):
        problems.append(
            Problem(
                name,
                f"{name}.id is neither its primary key nor unique.",
                "The product tells violations apart by id.",
            )
        )
    return problems


def _id_is_unique(cursor: Any, table: Table) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = %s AND i.indisunique AND i.indnatts = 1"
        " AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'id')",
        [table.oid],
    )
    return bool(cursor.fetchone()[0])


def privilege_problems(cursor: Any, table: Table) -> list[Problem]:
    name = table.qualified
    cursor.execute(
        "SELECT current_user, pg_has_role(current_user, %s::regrole, 'USAGE'),"
        " has_table_privilege(%s::oid, 'TRIGGER'), has_table_privilege(%s::oid, 'SELECT')",
        [sql.Identifier(table.owner).as_string(), table.oid, table.oid],
    )
    role, owns, may_trigger, may_select = cursor.fetchone()
    grants = []
    if not owns and not may_trigger and not is_watched(cursor, table):
        grants.append("TRIGGER")
    if not may_select:
        grants.append("SELECT")
    if not grants:
        return []
    missing = " and ".join(grants)
    what = "attach its trigger to" if "TRIGGER" in grants else "read"
    return [
        Problem(
            name,
            f"The product's role {role} may not {what} {name}: it does not own the table "
            f"(its owner is {table.owner}) and lacks the {missing} privilege.",
            f"Ask the owner to run: GRANT {', '.join(grants)} ON {name} TO "
            f"{sql.Identifier(role).as_string()};",
        )
    ]


def triggers(cursor: Any, table: Table) -> dict[str, str]:
    """Every trigger on the table (not internal ones): name -> function."""
    cursor.execute(
        "SELECT t.tgname, t.tgfoid::regprocedure::text FROM pg_trigger t"
        " WHERE t.tgrelid = %s AND NOT t.tgisinternal ORDER BY t.tgname",
        [table.oid],
    )
    return dict(cursor.fetchall())


def is_product_trigger(function: str) -> bool:
    return PRODUCT_TRIGGER_FUNCTION.fullmatch(function) is not None


def foreign_triggers(cursor: Any, table: Table) -> dict[str, str]:
    """Triggers someone else attached (the tutorial's notify_on_change(), say)."""
    return {name: f for name, f in triggers(cursor, table).items() if not is_product_trigger(f)}


def is_watched(cursor: Any, table: Table) -> bool:
    return any(is_product_trigger(f) for f in triggers(cursor, table).values())


def older_trigger_functions(cursor: Any, table: Table) -> set[str]:
    """The functions of the product's triggers of older versions that watch the table."""
    product = {f for f in triggers(cursor, table).values() if is_product_trigger(f)}
    return product - {TRIGGER_FUNCTION}


def index_states(cursor: Any, table: Table) -> dict[str, str]:
    """Each product index of the table: 'valid', 'invalid' (a failed build) or 'missing'."""
    cursor.execute(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s",
        [table.oid],
    )
    present = dict(cursor.fetchall())
    states = {}
    for spec in INDEXES:
        name = spec.name(table.name)
        states[name] = "missing" if name not in present else "valid" if present[name] else "invalid"
    return states


def created_tables(cursor: Any) -> set[str]:
    """The detectors' tables the product created, recording the built-in ones first where
    a database was created before the record existed (migration 0001 made all three then)."""
    cursor.execute("SELECT to_regclass('realtime_created_table') IS NOT NULL")
    if not cursor.fetchone()[0]:
        cursor.execute(CREATED_TABLES_SQL)
        cursor.execute(
            "INSERT INTO realtime_created_table (table_name)"
            " SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
            [list(BUILT_IN_TABLES)],
        )
    cursor.execute("SELECT table_name FROM realtime_created_table")
    return {row[0] for row in cursor.fetchall()}


def describe(problems: Iterable[Problem]) -> str:
    return "\n".join(
        f"  {problem.message}" + (f"\n    {problem.hint}" if problem.hint else "")
        for problem in problems
    )


class AdoptOrCreateModel(migrations.CreateModel):
    """CreateModel for a detectors' table: adopts the table where it exists, as it is.

    An existing table is checked (columns, types, privileges) and left untouched; a
    missing one is created and recorded as the product's. Backwards, only a table the
    product created is dropped.
    """

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.name)
        table_name = model._meta.db_table
        with schema_editor.connection.cursor() as cursor:
            table = find_table(cursor, table_name)
            if table is not None:
                problems = table_problems(cursor, table)
                if problems:
                    raise CommandError(
                        f"Cannot adopt the existing table {table.qualified}:\n{describe(problems)}"
                    )
                return
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            cursor.execute(
                "INSERT INTO realtime_created_table (table_name) VALUES (%s)", [table_name]
            )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.name)
        table_name = model._meta.db_table
        with schema_editor.connection.cursor() as cursor:
            if table_name not in created_tables(cursor):
                return  # adopted: the detectors' table stays
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            cursor.execute("DELETE FROM realtime_created_table WHERE table_name = %s", [table_name])


class OnCreatedTableMixin:
    """A field operation that changes the database only on a table the product created."""

    model_name: str

    def _created(self, schema_editor: Any, state: Any, app_label: str) -> bool:
        model = state.apps.get_model(app_label, self.model_name)
        with schema_editor.connection.cursor() as cursor:
            return model._meta.db_table in created_tables(cursor)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if self._created(schema_editor, from_state, app_label):
            super().database_forwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if self._created(schema_editor, from_state, app_label):
            super().database_backwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]


class AddFieldToCreatedTable(OnCreatedTableMixin, migrations.AddField):
    pass


class RemoveFieldFromCreatedTable(OnCreatedTableMixin, migrations.RemoveField):
    pass
