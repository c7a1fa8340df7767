"""sql/schema.sql is what the migrations build now (regenerate: make schema)."""

from __future__ import annotations

import difflib
import uuid

from tests.helpers import ROOT, manage, scratch_database


def test_schema_sql_is_current(db_url) -> None:
    with scratch_database(db_url, f"realtime_schema_{uuid.uuid4().hex[:8]}") as url:
        manage(url, "migrate", "--noinput")
        now = manage(url, "schema_sql")
    committed = (ROOT / "sql" / "schema.sql").read_text()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), now.splitlines(True)))
    assert now == committed, f"sql/schema.sql is out of date (make schema):\n{diff[:3000]}"
