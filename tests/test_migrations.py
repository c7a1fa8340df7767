"""Migration 0006/0007 (trigger v3) both ways on a database of its own: nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.helpers import manage, scratch_database


@pytest.fixture
def scratch_url(db_url: str) -> Iterator[str]:
    with scratch_database(db_url, "realtime_migrations_test") as url:
        yield url


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
        assert triggers(conn) == version(3)
        again = changes(
            conn,
            "SELECT id, op, data::text, xid::text, created_at"
            " FROM realtime_changes(0, 9223372036854775807) ORDER BY id",
        )
    assert again == before
