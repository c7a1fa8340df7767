"""The trigger in sql/, on the real database: event log, NOTIFY payload, big rows, any table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from psycopg import sql

from tests.helpers import insert_violation


def last_event(pg: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = pg.execute(
        "SELECT id, table_name, op, data FROM realtime_event ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return tuple(row)


def notifications(conn: psycopg.Connection[Any], count: int = 1) -> list[dict[str, Any]]:
    return [json.loads(n.payload) for n in conn.notifies(timeout=1.0, stop_after=count)]


def insert_many(pg: psycopg.Connection[Any], rows: int, marker: str) -> None:
    pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " SELECT n, CURRENT_DATE, LOCALTIME(0), %s || n FROM generate_series(1, %s) n",
        [marker, rows],
    )


@pytest.fixture
def listening(db_url: str):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("LISTEN realtime_changed_v1")
        yield conn


def test_insert_update_delete_are_logged_and_notified(pg, listening, marker) -> None:
    row_id = insert_violation(pg, "violation_lotodetections", camera_id=4, image=marker)
    insert = notifications(listening)[0]
    assert insert["table"] == "violation_lotodetections"
    assert insert["op"] == "INSERT"
    assert insert["data"]["id"] == row_id
    assert insert["data"]["camera_id"] == 4
    assert insert["data"]["violation_image"] == marker
    assert last_event(pg) == (insert["id"], "violation_lotodetections", "INSERT", insert["data"])

    pg.execute("UPDATE violation_lotodetections SET camera_id = 5 WHERE id = %s", [row_id])
    update = notifications(listening)[0]
    assert (update["op"], update["data"]["camera_id"]) == ("UPDATE", 5)
    assert update["id"] > insert["id"]

    pg.execute("DELETE FROM violation_lotodetections WHERE id = %s", [row_id])
    delete = notifications(listening)[0]
    assert delete["op"] == "DELETE"
    assert delete["data"] == {**update["data"]}, "DELETE carries the old row"


def test_the_watched_tables_carry_the_statement_triggers_of_v5(pg) -> None:
    rows = pg.execute(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE t.tgname LIKE 'realtime_notify_%' ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        (table, f"realtime_notify_v5_{op}")
        for table in (
            "violation_humandetections",
            "violation_lotodetections",
            "violation_ppedetections",
        )
        for op in ("delete", "insert", "update")
    ]


def test_a_statement_of_100_rows_notifies_each_row(pg, listening, marker) -> None:
    insert_many(pg, 100, marker)
    payloads = notifications(listening, 100)
    assert len(payloads) == 100
    assert [p["data"]["violation_image"] for p in payloads] == [
        f"{marker}{n}" for n in range(1, 101)
    ]
    assert [p["id"] for p in payloads] == sorted(p["id"] for p in payloads)


def test_a_bigger_statement_notifies_once_and_logs_one_row(pg, listening, marker) -> None:
    insert_many(pg, 101, marker)
    [notice] = notifications(listening, 2)
    assert (notice["table"], notice["op"], notice["rows"]) == (
        "violation_humandetections",
        "INSERT",
        101,
    )
    assert pg.execute(
        "SELECT id, first_id, cardinality(ids) FROM realtime_event WHERE xid = %s::xid8",
        [notice["xid"]],
    ).fetchall() == [(notice["last_id"], notice["first_id"], 101)]
    logged = pg.execute(
        "SELECT id, data->>'violation_image' FROM realtime_changes(%s, %s)"
        " WHERE xid = %s::xid8 ORDER BY id",
        [notice["first_id"] - 1, notice["last_id"], notice["xid"]],
    ).fetchall()
    assert [image for _, image in logged] == [f"{marker}{n}" for n in range(1, 102)]
    assert (logged[0][0], logged[-1][0]) == (notice["first_id"], notice["last_id"])

    pg.execute(
        "UPDATE violation_humandetections SET camera_id = 0 WHERE violation_image LIKE %s",
        [marker + "%"],
    )
    [update] = notifications(listening, 2)
    assert (update["op"], update["rows"]) == ("UPDATE", 101)
    pg.execute(
        "DELETE FROM violation_humandetections WHERE violation_image LIKE %s", [marker + "%"]
    )
    [delete] = notifications(listening, 2)
    assert (delete["op"], delete["rows"]) == ("DELETE", 101)
    deleted = pg.execute(
        "SELECT count(*) FROM realtime_changes(%s, %s)"
        " WHERE op = 'DELETE' AND (data->>'camera_id')::int = 0",
        [delete["first_id"] - 1, delete["last_id"]],
    ).fetchone()
    assert deleted == (101,), "DELETE logs the old rows"


@contextmanager
def watched_table(pg: psycopg.Connection[Any], name: str, columns: str) -> Iterator[None]:
    """A scratch table watched by v5; dropped afterwards, with its changes in the log."""
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    pg.execute(sql.SQL(f"CREATE TABLE {{}} ({columns})").format(sql.Identifier(name)))
    pg.execute("SELECT realtime_watch_v5(%s)", [name])
    try:
        yield
    finally:
        pg.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        pg.execute("DELETE FROM realtime_event WHERE table_name = %s", [name])


def log_rows_of(pg: psycopg.Connection[Any], xid: str) -> tuple[int, int]:
    """How many log rows a transaction wrote, and how many of them hold one change."""
    row = pg.execute(
        "SELECT count(*), count(*) FILTER (WHERE ids IS NULL) FROM realtime_event"
        " WHERE xid = %s::xid8",
        [xid],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_rows_too_big_to_pack_together_are_logged_one_by_one(pg, listening) -> None:
    """Past PostgreSQL's 1 GB for one value, v5 falls back to a log row per change."""
    # lz4: the test's own INSERT takes 0.2 s instead of pglz's 4.5 s.
    with watched_table(pg, "camera_frames", "id serial PRIMARY KEY, frame text COMPRESSION lz4"):
        # 110 rows of 10 MB: 1.1 GB of JSON together (the rows compress to almost nothing).
        pg.execute(
            "INSERT INTO camera_frames (frame)"
            " SELECT repeat('x', 10000000) FROM generate_series(1, 110)"
        )
        [notice] = notifications(listening, 2)
        assert (notice["table"], notice["rows"]) == ("camera_frames", 110)
        assert log_rows_of(pg, notice["xid"]) == (110, 110)
        # Sizes only: reading 1.1 GB of JSON back would double the test's time.
        changes = pg.execute(
            "SELECT octet_length(data::text) FROM realtime_changes(%s, %s)"
            " WHERE xid = %s::xid8 ORDER BY id",
            [notice["first_id"] - 1, notice["last_id"], notice["xid"]],
        ).fetchall()
        assert len(changes) == 110
        assert all(10_000_000 < size < 10_000_100 for (size,) in changes)


def test_rows_over_64_mb_together_are_logged_one_by_one(pg, listening) -> None:
    """A log row's JSON stays under 64 MB: past it, v5 logs a row per change."""
    with watched_table(pg, "camera_clips", "id serial PRIMARY KEY, clip text COMPRESSION lz4"):
        pg.execute(
            "INSERT INTO camera_clips (clip)"
            " SELECT repeat('c', 700000) FROM generate_series(1, 101)"
        )
        [notice] = notifications(listening, 2)
        assert log_rows_of(pg, notice["xid"]) == (101, 101)


@pytest.mark.parametrize("older", [1, 2, 3, 4])
def test_watching_with_an_older_version_replaces_v5(pg, listening, older) -> None:
    """realtime_watch_vN() on a table v5 watches: one trigger set, each change logged once."""
    with watched_table(pg, "gate_events", "id serial PRIMARY KEY, gate text"):
        pg.execute(f"SELECT realtime_watch_v{older}('gate_events')")
        pg.execute("INSERT INTO gate_events (gate) VALUES ('north')")
        assert len(notifications(listening, 3)) == 1
        logged = pg.execute("SELECT count(*) FROM realtime_event WHERE table_name = 'gate_events'")
        assert logged.fetchone() == (1,)
        watched = pg.execute(
            "SELECT trigger_function::text FROM realtime_watched_tables()"
            " WHERE target = 'gate_events'::regclass"
        )
        assert watched.fetchall() == [(f"realtime_notify_v{older}()",)]
        pg.execute(f"SELECT realtime_unwatch_v{older}('gate_events')")
        left = pg.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'gate_events'::regclass")
        assert left.fetchone() == (0,)


def test_watching_again_with_v5_takes_no_lock(pg) -> None:
    """realtime_watch_v5() on a table v5 alone watches does nothing: a role with only the
    TRIGGER privilege (which cannot drop a trigger) may run it."""
    with watched_table(pg, "gate_events", "id serial PRIMARY KEY, gate text"):
        before = pg.execute(
            "SELECT oid FROM pg_trigger WHERE tgrelid = 'gate_events'::regclass ORDER BY oid"
        ).fetchall()
        pg.execute("BEGIN")
        try:
            pg.execute("SELECT realtime_watch_v5('gate_events')")
            locks = pg.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'gate_events'::regclass"
                " AND pid = pg_backend_pid()"
            ).fetchone()
        finally:
            pg.execute("COMMIT")
        assert locks == (0,)
        after = pg.execute(
            "SELECT oid FROM pg_trigger WHERE tgrelid = 'gate_events'::regclass ORDER BY oid"
        ).fetchall()
        assert after == before and len(after) == 3


def test_a_statement_that_changes_nothing_notifies_nothing(pg, listening) -> None:
    pg.execute("DELETE FROM violation_humandetections WHERE id < 0")
    assert notifications(listening) == []


def test_row_of_20_kb_inserts_and_travels_by_id(pg, listening) -> None:
    image = "/media/" + "x" * 20_000
    insert_violation(pg, "violation_ppedetections", image=image)
    payload = notifications(listening)[0]
    assert "data" not in payload, "NOTIFY payloads stop short of 8000 bytes"
    event = pg.execute("SELECT data FROM realtime_event WHERE id = %s", [payload["id"]]).fetchone()
    assert event is not None and event[0]["violation_image"] == image


def test_row_of_1_mb_and_nulls_everywhere_insert(pg) -> None:
    insert_violation(pg, "violation_ppedetections", image="y" * 1_000_000)
    pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " VALUES (NULL, NULL, NULL, NULL)"
    )
    _, _, op, data = last_event(pg)
    assert op == "INSERT" and data["camera_id"] is None and data["violation_image"] is None


def test_writer_without_rights_on_the_event_log_still_inserts(pg, db_url) -> None:
    # Roles belong to the cluster, not the database: a name of this test's own, so a run
    # beside it (another pytest-xdist worker, another checkout) has another.
    name = f"detector_{uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    try:
        # RETURNING id (how the tests insert) needs SELECT; nothing on realtime_event.
        pg.execute(sql.SQL("GRANT INSERT, SELECT ON violation_humandetections TO {}").format(role))
        with psycopg.connect(db_url, user=name, autocommit=True) as detector:
            insert_violation(detector, image="/media/from-detector.jpg")
        assert last_event(pg)[3]["violation_image"] == "/media/from-detector.jpg"
    finally:
        pg.execute(sql.SQL("REVOKE ALL ON violation_humandetections FROM {}").format(role))
        pg.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.mark.django_db(transaction=True)
def test_install_triggers_watches_any_table(pg, listening) -> None:
    pg.execute("DROP TABLE IF EXISTS forklift_events")
    pg.execute('CREATE TABLE forklift_events (id serial PRIMARY KEY, "Zone" text)')
    try:
        call_command("install_triggers", "forklift_events")
        pg.execute("""INSERT INTO forklift_events ("Zone") VALUES ('dock 3')""")
        payload = notifications(listening)[0]
        assert payload["table"] == "forklift_events"
        assert payload["data"] == {"id": 1, "Zone": "dock 3"}

        call_command("install_triggers", "--remove", "forklift_events")
        pg.execute("""INSERT INTO forklift_events ("Zone") VALUES ('dock 4')""")
        assert notifications(listening) == []
    finally:
        pg.execute("DROP TABLE forklift_events")


@pytest.mark.django_db(transaction=True)
def test_install_triggers_names_a_missing_table() -> None:
    with pytest.raises(CommandError, match="no_such_table"):
        call_command("install_triggers", "no_such_table")


def changes_of(pg: psycopg.Connection[Any], table: str, op: str) -> list[tuple[Any, ...]]:
    return pg.execute(
        "SELECT id, data, old_data FROM realtime_changes(0, (SELECT max(id) FROM realtime_event))"
        " WHERE table_name = %s AND op = %s ORDER BY id",
        [table, op],
    ).fetchall()


def test_an_update_that_moves_a_row_to_another_camera_logs_the_row_as_it_was(pg, marker) -> None:
    """A stream that showed the row must be told it left (issue 29): v5 logs the old row of
    an UPDATE that changes camera_id, in row_to_json's own key order, and nothing else."""
    table = "violation_humandetections"
    row_id = insert_violation(pg, table, camera_id=3, image=marker)
    before = pg.execute(
        "SELECT row_to_json(v)::text FROM violation_humandetections v WHERE id = %s", [row_id]
    ).fetchone()[0]
    pg.execute("UPDATE violation_humandetections SET violation_image = 'x' WHERE id = %s", [row_id])
    pg.execute("UPDATE violation_humandetections SET camera_id = 8 WHERE id = %s", [row_id])
    kept, moved = changes_of(pg, table, "UPDATE")[-2:]
    assert kept[2] is None, "an UPDATE that keeps the camera logs no old row"
    assert moved[1]["camera_id"] == 8 and moved[2]["camera_id"] == 3
    old_text = pg.execute(
        "SELECT old_data::text FROM realtime_event WHERE id = %s", [moved[0]]
    ).fetchone()[0]
    assert old_text == before.replace(marker, "x")
    # A camera's changes are those of rows at it, and of rows that left it.
    after_camera_3 = pg.execute(
        "SELECT id FROM realtime_changes_after(%s, 10, NULL, '3')", [kept[0]]
    ).fetchall()
    assert after_camera_3 == [(moved[0],)]


@pytest.mark.parametrize("rows", [150, 10_050], ids=["one statement row", "two statement rows"])
def test_a_big_update_logs_the_old_rows_of_those_it_moved_beside_their_changes(
    pg, marker, rows
) -> None:
    insert_many(pg, rows, marker)
    # Rows at odd cameras move to camera 0; the others keep their camera.
    pg.execute(
        "UPDATE violation_humandetections"
        " SET camera_id = CASE WHEN camera_id %% 2 = 1 THEN 0 ELSE camera_id END,"
        "     violation_image = violation_image || '!'"
        " WHERE violation_image LIKE %s",
        [marker + "%"],
    )
    changes = changes_of(pg, "violation_humandetections", "UPDATE")[-rows:]
    assert len(changes) == rows
    for _, data, old in changes:
        number = int(data["violation_image"].removeprefix(marker).removesuffix("!"))
        if number % 2:
            assert data["camera_id"] == 0 and old["camera_id"] == number
            assert old["violation_image"] == f"{marker}{number}" and old["id"] == data["id"]
        else:
            assert old is None and data["camera_id"] == number


def test_an_update_of_a_table_without_a_camera_logs_no_old_row(pg) -> None:
    with watched_table(pg, "gate_events", "id serial PRIMARY KEY, gate text"):
        pg.execute("INSERT INTO gate_events (gate) VALUES ('north')")
        pg.execute("UPDATE gate_events SET gate = 'south'")
        [(_, data, old)] = changes_of(pg, "gate_events", "UPDATE")
        assert (data["gate"], old) == ("south", None)
    with watched_table(pg, "gate_events", "gate text, camera_id int"):
        pg.execute("INSERT INTO gate_events (gate, camera_id) VALUES ('north', 1)")
        pg.execute("UPDATE gate_events SET camera_id = 2")
        [(_, data, old)] = changes_of(pg, "gate_events", "UPDATE")
        assert (data["camera_id"], old) == (2, None), "no id: rows cannot be paired"
