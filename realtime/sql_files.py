"""The SQL in sql/ is the one source: migrations apply those files as a DBA would with psql."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import migrations

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def read_sql(filename: str) -> str:
    return (SQL_DIR / filename).read_text()


class RunSQLFile(migrations.RunSQL):
    def __init__(self, filename: str, **kwargs: Any) -> None:
        self.filename = filename
        super().__init__(sql=read_sql(filename), **kwargs)

    def describe(self) -> str:
        return f"Run sql/{self.filename}"


def function_definition(filename: str, name: str) -> str:
    """The `CREATE OR REPLACE FUNCTION name(...)` statement of a file in sql/: a later
    version's migration runs it on reverse to put an earlier definition back."""
    start = f"CREATE OR REPLACE FUNCTION {name}("
    text = read_sql(filename)
    begin = text.index(start)
    # The body ends at the first "$$;" that starts a line.
    end = text.index("\n$$;", begin) + len("\n$$;")
    return text[begin:end] + "\n"
