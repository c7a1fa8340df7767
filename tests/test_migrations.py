"""Migrations both ways on a database of their own: nothing is lost."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import manage, scratch_database


@pytest.fixture
def scratch_url(db_url: str) -> Iterator[str]:
    with scratch_database(db_url, f"realtime_migrations_{uuid.uuid4().hex[:8]}") as url:
        yield url


TABLES = ("violation_humandetections", "violation_lotodetections", "violation_ppedetections")


def migrate(url: str, *target: str) -> None:
    manage(url, "migrate", *target, "--noinput", "-v0")


def changes(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(query).fetchall()]


def version(n: int) -> set[str]:
    return {f"realtime_notify_v{n}_{op}" for op in ("insert", "update", "delete")}


def triggers(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'violation_ppedetections'::regclass"
    ).fetchall()
    return {row[0] for row in rows}


def test_statement_rows_survive_going_back_and_forth(scratch_url) -> None:
    migrate(scratch_url)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO violation_ppedetections (camera_id, violation_image)"
            " SELECT n, '/media/m-' || n FROM generate_series(1, 250) n"
        )
        conn.execute("INSERT INTO violation_ppedetections (camera_id) VALUES (7)")
        packed = conn.execute("SELECT count(*) FROM realtime_event WHERE ids IS NOT NULL")
        assert packed.fetchone() == (1,)
        before = changes(
            conn,
            "SELECT id, op, data::text, xid::text, created_at"
            " FROM realtime_changes(0, 9223372036854775807) ORDER BY id",
        )
    assert len(before) == 251

    migrate(scratch_url, "realtime", "0006")  # step 2 undone: v2 again, rows still packed
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(2)

    migrate(scratch_url, "realtime", "0005")  # step 1 undone: one log row per change
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        after = changes(
            conn, "SELECT id, op, data::text, xid::text, created_at FROM realtime_event ORDER BY id"
        )
        assert after == before
        # v2's watch functions are v2's again (sql/005 had redefined them).
        conn.execute("SELECT realtime_watch_v2('violation_ppedetections')")

    migrate(scratch_url)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(5)
        again = changes(
            conn,
            "SELECT id, op, data::text, xid::text, created_at"
            " FROM realtime_changes(0, 9223372036854775807) ORDER BY id",
        )
    assert again == before


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "previous_version_0007.sql"
ACKS_IN_COLUMNS = """
SELECT %(table)s, id, acknowledged_by, acknowledged_at FROM {table}
WHERE acknowledged_at IS NOT NULL ORDER BY id
"""


def acknowledgements_in_columns(conn: psycopg.Connection[Any]) -> set[tuple[Any, ...]]:
    found: set[tuple[Any, ...]] = set()
    for table in TABLES:
        query = sql.SQL(ACKS_IN_COLUMNS).format(table=sql.Identifier(table))
        found |= {tuple(r) for r in conn.execute(query, {"table": table}).fetchall()}
    return found


def detector_rows(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [
            tuple(r)
            for r in conn.execute(
                sql.SQL(
                    "SELECT id, camera_id, violation_date, violation_time, violation_image"
                    " FROM {} ORDER BY id"
                ).format(sql.Identifier(table))
            ).fetchall()
        ]
        for table in TABLES
    }


def columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped",
        [table],
    ).fetchall()
    return {row[0] for row in rows}


def test_a_database_of_the_previous_version_keeps_every_acknowledgement_both_ways(
    scratch_url,
) -> None:
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(FIXTURE), scratch_url],
        check=True,
        capture_output=True,
    )
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        for n, table in enumerate(TABLES):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (camera_id, violation_date, violation_time, violation_image,"
                    " acknowledged_at, acknowledged_by)"
                    " SELECT g, DATE '2025-01-01' + g, TIME '10:00:00.25',"
                    " '/media/' || g || '.jpg', CASE WHEN g %% 3 = 0 THEN"
                    " TIMESTAMPTZ '2025-06-01 08:00:00.5+00' + g * interval '1 min' END,"
                    " CASE WHEN g %% 3 = 0 THEN 'operator-' || g ELSE '' END"
                    " FROM generate_series(1, %s) g"
                ).format(sql.Identifier(table)),
                [30 + n],
            )
        acknowledged = acknowledgements_in_columns(conn)
        rows = detector_rows(conn)
    assert len(acknowledged) == 10 + 10 + 10

    migrate(scratch_url)
    with psycopg.connect(scratch_url) as conn:
        moved = conn.execute(
            "SELECT table_name, violation_id, acknowledged_by, acknowledged_at"
            " FROM realtime_acknowledgement"
        ).fetchall()
        assert {tuple(r) for r in moved} == acknowledged
        for table in TABLES:
            # The product created these tables (the previous version always did): its
            # columns go, the detectors' stay.
            assert columns(conn, table) == {
                "id",
                "camera_id",
                "violation_date",
                "violation_time",
                "violation_image",
            }
        assert detector_rows(conn) == rows
        assert conn.execute(
            "SELECT count(*) FROM realtime_event WHERE op = 'STATE'"
        ).fetchone() == (0,), "moving them is not news for the screens"

    migrate(scratch_url, "realtime", "0007")
    with psycopg.connect(scratch_url) as conn:
        assert acknowledgements_in_columns(conn) == acknowledged
        assert detector_rows(conn) == rows
        assert conn.execute("SELECT to_regclass('realtime_acknowledgement')").fetchone() == (None,)

    migrate(scratch_url)
    with psycopg.connect(scratch_url) as conn:
        again = conn.execute(
            "SELECT table_name, violation_id, acknowledged_by, acknowledged_at"
            " FROM realtime_acknowledgement"
        ).fetchall()
        assert {tuple(r) for r in again} == acknowledged


def functions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'realtime%'"
    ).fetchall()
    return {row[0] for row in rows}


def state_triggers(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'realtime_acknowledgement'::regclass"
        " AND NOT tgisinternal"
    ).fetchall()
    return {row[0] for row in rows}


def test_trigger_v4_goes_back_to_v3_and_forward_again(scratch_url) -> None:
    """0013 and 0012 undone: v3 watches the tables as before, sql/007's functions are gone
    and the ones it redefined are sql/005's again; every step logs each change once."""
    migrate(scratch_url, "realtime", "0011")
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute("SELECT realtime_watch_v3(%s)", [table])  # as 0008 used to
        before = functions(conn)
        unwatch_v3 = conn.execute("SELECT pg_get_functiondef('realtime_unwatch_v3'::regproc)")
        unwatch_v3_before = unwatch_v3.fetchone()
    migrate(scratch_url, "realtime", "0017")
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(4)
        assert state_triggers(conn) == {"realtime_state_v2"}
        assert conn.execute("SELECT realtime_log_window()").fetchone() == (10_000,)
    migrate(scratch_url, "realtime", "0011")
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(3)
        assert state_triggers(conn) == {"realtime_state_v1"}
        assert functions(conn) == before
        unwatch_v3 = conn.execute("SELECT pg_get_functiondef('realtime_unwatch_v3'::regproc)")
        assert unwatch_v3.fetchone() == unwatch_v3_before
        conn.execute("INSERT INTO violation_ppedetections (camera_id) VALUES (1)")
        conn.execute(
            "INSERT INTO violation_ppedetections (camera_id)"
            " SELECT n FROM generate_series(1, 150) n"
        )
        conn.execute(
            "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
            " acknowledged_at) SELECT 'violation_ppedetections', min(id), 'op', now()"
            " FROM violation_ppedetections"
        )
    migrate(scratch_url, "realtime", "0017")
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(4)
        conn.execute("INSERT INTO violation_ppedetections (camera_id) VALUES (2)")
        logged = conn.execute(
            "SELECT op, count(*), count(DISTINCT id) FROM realtime_changes(0, 9223372036854775807)"
            " GROUP BY op ORDER BY op"
        ).fetchall()
        assert logged == [("INSERT", 152, 152), ("STATE", 1, 1)]


def definition(conn: psycopg.Connection[Any], function: str) -> str:
    row = conn.execute("SELECT pg_get_functiondef(%s::regprocedure)", [function]).fetchone()
    assert row is not None
    return str(row[0])


READERS = (
    "realtime_changes(bigint,bigint,bigint[])",
    "realtime_changes_after(bigint,integer,text[],text)",
)


def test_trigger_v5_goes_back_to_v4_and_forward_again(scratch_url) -> None:
    """0019 and 0018 undone: v4 watches the tables again, the readers are sql/005's and
    sql/007's again, old_data is gone with nothing else of the log; the search paths stay
    pinned (undoing that would open the hole again)."""
    migrate(scratch_url, "realtime", "0017")
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        before = functions(conn)
        readers_before = [definition(conn, f) for f in READERS]
        conn.execute("INSERT INTO violation_ppedetections (camera_id) VALUES (1)")
    migrate(scratch_url)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(5)
        conn.execute("UPDATE violation_ppedetections SET camera_id = 2")
        moved = conn.execute(
            "SELECT old_data->>'camera_id' FROM realtime_changes(0, 9223372036854775807)"
            " WHERE op = 'UPDATE'"
        ).fetchall()
        assert moved == [("1",)]
    migrate(scratch_url, "realtime", "0017")
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(4)
        assert functions(conn) == before
        assert [definition(conn, f) for f in READERS] == readers_before
        columns = conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'realtime_event'::regclass"
            " AND attname = 'old_data' AND NOT attisdropped"
        ).fetchone()
        assert columns == (0,)
        pinned = conn.execute(
            "SELECT bool_and('search_path=pg_catalog, public, pg_temp' = ANY(proconfig))"
            " FROM pg_proc WHERE prosecdef AND proname LIKE 'realtime%'"
        ).fetchone()
        assert pinned == (True,)
        conn.execute("DELETE FROM violation_ppedetections")
    migrate(scratch_url)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert triggers(conn) == version(5)
        logged = conn.execute(
            "SELECT op, count(*) FROM realtime_changes(0, 9223372036854775807)"
            " GROUP BY op ORDER BY op"
        ).fetchall()
        assert logged == [("DELETE", 1), ("INSERT", 1), ("UPDATE", 1)]
