"""What the product needs of a detectors' table (docs/decisions/
009-the-detectors-own-their-tables.md): its columns and their types, and
the sort key its queries read by, with the indexes that serve it. Beside the queries
(realtime.violations.queries) that rely on it; realtime.violations.adoption checks a table
against it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    from realtime.violations.adoption import Table


# What the product reads from every kind's table, and the types it reads them as.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("int2", "int4", "int8"),
    "camera_id": ("int2", "int4", "int8"),
    "violation_date": ("date",),
    "violation_time": ("time",),
    "violation_image": ("text", "varchar", "bpchar"),
}


TYPE_NAMES = {
    "id": "an integer (smallint, integer or bigint)",
    "camera_id": "an integer (smallint, integer or bigint)",
    "violation_date": "a date",
    "violation_time": "a time without time zone",
    "violation_image": "text (text, varchar or char)",
}


# The tables of the three built-in kinds: created by migration 0001 where they do not exist.
BUILT_IN_TABLES = (
    "violation_humandetections",
    "violation_lotodetections",
    "violation_ppedetections",
)


# --- indexes ------------------------------------------------------------------------------
# The sort key of every page: newest first by the detection's date and time (NULLs as
# oldest), then id. The expressions here and in realtime.violations.queries are the same
# text, so the planner uses the index for both.
SORT_DATE = "coalesce(violation_date, '-infinity'::date)"


SORT_TIME = "coalesce(violation_time, '00:00'::time)"


@dataclass(frozen=True)
class IndexSpec:
    suffix: str
    columns: str
    purpose: str

    def name(self, table: str) -> str:
        full = f"{table}_realtime_{self.suffix}"
        if len(full) <= 63:
            return full
        digest = hashlib.sha256(table.encode()).hexdigest()[:8]
        return f"{table[: 63 - len(self.suffix) - 19]}_{digest}_realtime_{self.suffix}"

    def create_sql(self, table: Table) -> str:
        index = sql.Identifier(self.name(table.name)).as_string()
        return f"CREATE INDEX CONCURRENTLY {index} ON {table.qualified} ({self.columns})"


INDEXES = (
    IndexSpec("recent", f"{SORT_DATE}, {SORT_TIME}, id", "the newest rows, counters, Load older"),
    IndexSpec("camera", f"camera_id, {SORT_DATE}, {SORT_TIME}, id", "the same, for one camera"),
)
