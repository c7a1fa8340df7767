"""The log's two row formats, read through realtime.pipeline.event_log on the real database.

A statement of more than 100 rows is logged in one row per 10,000 changes (trigger v3,
sql/005); every reader must see its changes one by one, with their own ids.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django_eventstream.storage import EventDoesNotExist

from realtime.pipeline import event_log
from realtime.streams.storage import EventLogStorage
from tests.helpers import insert_violation, newest_event, prune_log

pytestmark = pytest.mark.django_db(transaction=True)


def insert_statement(
    pg: psycopg.Connection[Any], rows: int, marker: str, table: str = "violation_humandetections"
) -> None:
    """One INSERT of `rows` rows, cameras 0, 1, 2, 0, ...; images marker1, marker2, ..."""
    pg.execute(
        f"INSERT INTO {table} (camera_id, violation_date, violation_time, violation_image)"
        " SELECT n %% 3, CURRENT_DATE, LOCALTIME(0), %s || n FROM generate_series(1, %s) n",
        [marker, rows],
    )


def images(changes: list[Any]) -> list[str]:
    return [change["data"]["violation_image"] for change in changes]


def statement_rows(pg: psycopg.Connection[Any], after: int) -> list[tuple[int, int, int]]:
    """(id, first_id, changes) of the statement rows above an id."""
    return pg.execute(
        "SELECT id, first_id, cardinality(ids) FROM realtime_event"
        " WHERE ids IS NOT NULL AND id > %s ORDER BY id",
        [after],
    ).fetchall()


def test_a_big_statement_is_one_log_row_and_reads_as_its_changes(pg, marker) -> None:
    before = newest_event(pg)
    insert_statement(pg, 150, marker)
    [(log_id, first_id, count)] = statement_rows(pg, before)
    assert count == 150 and log_id == newest_event(pg)

    changes = event_log.changes_after(before, 1000)
    assert images(changes) == [f"{marker}{n}" for n in range(1, 151)]
    ids = [change["id"] for change in changes]
    assert ids == sorted(ids) and len(set(ids)) == 150
    assert (ids[0], ids[-1]) == (first_id, log_id)
    assert all(change["table"] == "violation_humandetections" for change in changes)
    assert all(change["op"] == "INSERT" for change in changes)
    assert event_log.change_ids_between(before, log_id) == ids
    assert event_log.changes_by_id([ids[10], ids[0], ids[-1]]) == [
        changes[0],
        changes[10],
        changes[-1],
    ]


def test_a_statement_of_25000_rows_is_logged_in_rows_of_at_most_10000(pg, marker) -> None:
    before = newest_event(pg)
    insert_statement(pg, 25_000, marker)
    packed = statement_rows(pg, before)
    assert 3 <= len(packed) <= 4
    assert all(count <= 10_000 for _, _, count in packed)
    assert sum(count for _, _, count in packed) == 25_000
    changes = event_log.changes_after(before, 30_000)
    assert images(changes) == [f"{marker}{n}" for n in range(1, 25_001)]


def test_reads_start_inside_a_statement_and_interleave_single_rows(pg, marker) -> None:
    before = newest_event(pg)
    insert_violation(pg, image=f"{marker}single-before")
    insert_statement(pg, 120, marker)
    insert_violation(pg, "violation_lotodetections", image=f"{marker}single-after")
    everything = event_log.changes_after(before, 1000)
    assert len(everything) == 122

    # A resume point in the middle of the statement's row: exactly what came after.
    middle = everything[60]["id"]
    rest = event_log.changes_after(middle, 1000)
    assert rest == everything[61:]
    assert event_log.changes_after(middle, 5) == everything[61:66]
    assert event_log.change_ids_between(middle, everything[70]["id"]) == [
        change["id"] for change in everything[61:71]
    ]


def test_replay_filters_tables_and_cameras_inside_a_statement(pg, marker) -> None:
    before = newest_event(pg)
    insert_statement(pg, 150, marker)
    insert_statement(pg, 150, marker, table="violation_ppedetections")
    camera_1 = event_log.changes_after(before, 1000, ["violation_humandetections"], 1)
    assert images(camera_1) == [f"{marker}{n}" for n in range(1, 151) if n % 3 == 1]
    ppe = event_log.changes_after(before, 1000, ["violation_ppedetections"])
    assert [change["table"] for change in ppe] == ["violation_ppedetections"] * 150


def test_replay_crosses_a_gap_of_ids_wider_than_its_window(pg, marker) -> None:
    before = newest_event(pg)
    insert_statement(pg, 150, marker)
    # Ids taken and never used (rolled back transactions, a restored sequence).
    pg.execute("SELECT setval('realtime_event_id_seq', nextval('realtime_event_id_seq') + 50000)")
    after_gap = insert_violation(pg, image=f"{marker}after-gap")
    changes = event_log.changes_after(before, 1000)
    assert len(changes) == 151
    assert changes[-1]["data"]["id"] == after_gap
    assert changes[-1]["id"] - changes[-2]["id"] > 50_000


def test_sse_replay_of_a_rows_channel_inside_a_statement(pg, marker) -> None:
    before = newest_event(pg)
    insert_statement(pg, 150, marker)
    events = EventLogStorage().get_events("table/human/2", before, limit=100)
    wanted = [n for n in range(1, 151) if n % 3 == 2]
    assert len(events) == len(wanted)
    assert all(f"{marker}{n}" in event.data for event, n in zip(events, wanted, strict=True))
    assert all(event.data.startswith("<tr") for event in events)


def test_the_oldest_id_is_a_statement_rows_first_change(pg, marker) -> None:
    before = newest_event(pg)
    insert_statement(pg, 150, marker)
    [(_, first_id, _)] = statement_rows(pg, before)
    prune_log(pg, first_id - 1)
    assert event_log.bounds()[0] == first_id
    storage = EventLogStorage()
    assert len(storage.get_events("violations", first_id - 1, limit=1000)) == 150
    with pytest.raises(EventDoesNotExist):
        storage.get_events("violations", first_id - 2)
