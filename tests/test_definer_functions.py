"""The product's SECURITY DEFINER functions run as their owner: nothing of the caller's may
steer them (issue 22, finding 1).

A detector's role that may only INSERT into one table fires the product's trigger, which
runs as the trigger's owner. PostgreSQL searches the caller's temporary schema first for
tables unless the function's search_path puts pg_temp last: a temp table named
realtime_event (with a DEFAULT that calls a pg_temp function) then received the row, ran
that function as the owner, and hid the violation from every screen.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import run_manage

pytestmark = pytest.mark.django_db(transaction=True)

# Every trigger function version a detector's INSERT, UPDATE or DELETE may fire, with the
# function that attaches it (still installed: scripts may call any of them).
TRIGGER_VERSIONS = ["realtime_watch_v1", "realtime_watch_v2", "realtime_watch_v3"]
TRIGGER_VERSIONS += ["realtime_watch_v4", "realtime_watch_v5"]

# The probe's reproduction, plus shadows of everything else the functions name.
HOSTILE_TEMP_SCHEMA = """
CREATE FUNCTION pg_temp.loot() RETURNS text LANGUAGE sql AS
  $$ SELECT current_user || ' ' || (SELECT left(password, 40) FROM public.auth_user LIMIT 1) $$;
CREATE TEMP SEQUENCE realtime_event_id_seq START 900000000;
CREATE TEMP TABLE realtime_event (id bigint DEFAULT nextval('pg_temp.realtime_event_id_seq'),
  table_name text, op text, data json,
  xid xid8 DEFAULT pg_current_xact_id(), created_at timestamptz DEFAULT clock_timestamp(),
  first_id bigint, ids bigint[], old_data json, loot text DEFAULT pg_temp.loot());
CREATE TEMP TABLE realtime_kind (id int, schema_name text, table_name text, loot text
  DEFAULT pg_temp.loot());
CREATE TEMP TABLE realtime_shelf (id int, camera_id bigint, loot text DEFAULT pg_temp.loot());
"""


def definer_functions(pg: psycopg.Connection[Any]) -> list[tuple[str, list[str] | None]]:
    return pg.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p"
        " WHERE p.prosecdef AND p.proname LIKE 'realtime%%'"
        " AND p.pronamespace = current_schema()::regnamespace ORDER BY 1"
    ).fetchall()


def test_every_definer_function_searches_the_callers_temp_schema_last(pg) -> None:
    found = definer_functions(pg)
    names = [name for name, _ in found]
    for expected in ("realtime_notify_v1()", "realtime_notify_v4()", "realtime_notify_v5()"):
        assert expected in names
    assert "realtime_state_changed_v1()" in names and "realtime_state_changed_v2()" in names
    schema = pg.execute("SELECT quote_ident(current_schema())").fetchone()[0]
    for name, config in found:
        assert f"search_path=pg_catalog, {schema}, pg_temp" in (config or []), (name, config)


@pytest.fixture
def probe_table(pg, db_url: str) -> Iterator[tuple[str, str]]:
    """A detectors' table of the probe's shape, and a role that may only INSERT, UPDATE
    and DELETE its rows (a detector's), as a connection string."""
    suffix = uuid.uuid4().hex[:8]
    table, role = f"probe_violations_{suffix}", f"probe_detector_{suffix}"
    pg.execute(
        sql.SQL(
            "CREATE TABLE {} (id bigserial PRIMARY KEY, camera_id integer,"
            " violation_date date, violation_time time, violation_image text)"
        ).format(sql.Identifier(table))
    )
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    pg.execute(
        sql.SQL("GRANT INSERT, UPDATE, DELETE, SELECT ON {} TO {}").format(
            sql.Identifier(table), sql.Identifier(role)
        )
    )
    pg.execute(
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
            sql.Identifier(f"{table}_id_seq"), sql.Identifier(role)
        )
    )
    try:
        yield table, psycopg.conninfo.make_conninfo(db_url, user=role)
    finally:
        pg.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
        pg.execute("DELETE FROM realtime_event WHERE table_name = %s", [table])
        pg.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        pg.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("watch", TRIGGER_VERSIONS)
@pytest.mark.parametrize("rows", [1, 150], ids=["one row", "a statement of 150"])
def test_a_hostile_temp_schema_runs_nothing_as_the_owner_and_hides_nothing(
    pg, probe_table, watch, rows
) -> None:
    table, detector_url = probe_table
    pg.execute(f"SELECT {watch}(%s)", [table])
    with psycopg.connect(detector_url, autocommit=True) as detector:
        detector.execute(HOSTILE_TEMP_SCHEMA)
        ident = sql.Identifier(table)
        detector.execute(
            sql.SQL(
                "INSERT INTO {} (camera_id, violation_date, violation_time, violation_image)"
                " SELECT 1, current_date, localtime(0), '/media/hidden.jpg'"
                " FROM generate_series(1, %s)"
            ).format(ident),
            [rows],
        )
        detector.execute(sql.SQL("UPDATE {} SET camera_id = 2").format(ident))
        detector.execute(sql.SQL("DELETE FROM {}").format(ident))
        shadowed = detector.execute(
            "SELECT (SELECT count(*) FROM pg_temp.realtime_event)"
            " + (SELECT count(*) FROM pg_temp.realtime_kind)"
            " + (SELECT count(*) FROM pg_temp.realtime_shelf),"
            " (SELECT last_value FROM pg_temp.realtime_event_id_seq)"
        ).fetchone()
    assert shadowed == (0, 900000000), "the trigger wrote to the caller's temp schema"
    logged = pg.execute(
        "SELECT op, count(*) FROM realtime_changes(0, (SELECT max(id) FROM realtime_event))"
        " WHERE table_name = %s GROUP BY op ORDER BY op",
        [table],
    ).fetchall()
    assert logged == [("DELETE", rows), ("INSERT", rows), ("UPDATE", rows)]


def test_check_names_a_definer_function_that_trusts_the_callers_temp_schema(
    pg, database_url
) -> None:
    """As a DBA re-running an older sql/ file would leave it (SET search_path FROM CURRENT)."""
    pg.execute('ALTER FUNCTION realtime_notify_v4() SET search_path = "$user", public')
    try:
        checked = run_manage(database_url, "check")
    finally:
        pg.execute("SELECT realtime_pin_search_path('realtime_notify_v4()')")
    assert checked.returncode != 0
    assert "realtime.E003" in checked.stderr and "realtime_notify_v4()" in checked.stderr
    assert "SELECT realtime_pin_search_path('realtime_notify_v4()');" in checked.stderr
    assert "Traceback" not in checked.stderr
    assert "realtime.E003" not in run_manage(database_url, "check").stderr


def test_check_warns_when_others_may_create_in_the_products_schema(pg, database_url) -> None:
    pg.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    try:
        checked = run_manage(database_url, "check").stderr
    finally:
        pg.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    assert "realtime.W005" in checked
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC;" in checked
    assert "realtime.W005" not in run_manage(database_url, "check").stderr
