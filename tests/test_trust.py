"""What a database role, a Redis neighbour and a token holder cannot do (docs/guarantees.md).

The reproductions of the black-box probe of issue #13, each against the real services.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from django_eventstream.views import Listener as StreamListener
from django_eventstream.views import get_listener_manager
from psycopg import sql

from realtime import kinds
from realtime.bridge import wake_row_streams
from realtime.bus import change_message
from tests.helpers import insert_violation, listener_under_test, running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notifier(db_url: str) -> Iterator[str]:
    """A role that may connect and INSERT into one table, nothing else (a detector's)."""
    role = f"detector_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        admin.execute(sql.SQL("GRANT INSERT ON violation_ppedetections TO {}").format(ident))
        admin.execute(
            sql.SQL("GRANT USAGE ON SEQUENCE violation_ppedetections_id_seq TO {}").format(ident)
        )
    yield psycopg.conninfo.make_conninfo(db_url, user=role)
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        admin.execute(sql.SQL("DROP ROLE {}").format(ident))


def next_event_id(pg: Any) -> int:
    [(last, called)] = pg.execute(
        "SELECT last_value, is_called FROM realtime_event_id_seq"
    ).fetchall()
    return int(last) + 1 if called else int(last)


async def test_a_forged_notification_shows_nothing_and_hides_no_real_violation(
    db_url, pg, notifier, marker
) -> None:
    """The probe's reproduction: a forged DELETE that takes the next event id, then a real row."""
    listener, got = listener_under_test(db_url)
    async with running(listener):
        with psycopg.connect(notifier, autocommit=True) as rogue:
            taken = next_event_id(pg)
            forged = [
                {
                    "id": taken,
                    "table": "violation_ppedetections",
                    "op": "DELETE",
                    "data": {"id": 1, "camera_id": 6},
                },
                {
                    "id": taken + 1,
                    "table": "violation_ppedetections",
                    "op": "INSERT",
                    "data": {
                        "id": "not a number",
                        "camera_id": 6,
                        "violation_image": "/media/forged.jpg",
                    },
                },
            ]
            for payload in forged:
                rogue.execute("SELECT pg_notify('realtime_changed_v1', %s)", [json.dumps(payload)])
            rogue.execute(
                "INSERT INTO violation_ppedetections (camera_id, violation_image) VALUES (6, %s)",
                [marker],
            )
        await got.wait_for_images({marker}, timeout=10)
        await asyncio.sleep(1.2)  # and two catch-up scans
    assert [e["op"] for e in got.events if e["op"] == "DELETE"] == [], "the forged DELETE"
    assert "/media/forged.jpg" not in got.images()
    [real] = [e for e in got.events if e["data"].get("violation_image") == marker]
    [(logged_id,)] = pg.execute(
        "SELECT id FROM realtime_event WHERE data->>'violation_image' = %s", [marker]
    ).fetchall()
    assert real["id"] == logged_id == taken, "the real row has the id the forgery claimed"


async def test_a_forged_notification_changes_nothing_it_names(db_url, pg, marker) -> None:
    """A payload's data is never taken for the row: an UPDATE the log does not hold."""
    row_id = insert_violation(pg, "violation_ppedetections", camera_id=3, image=marker)
    [(logged,)] = pg.execute(
        "SELECT id FROM realtime_event WHERE data->>'violation_image' = %s", [marker]
    ).fetchall()
    listener, got = listener_under_test(db_url)
    async with running(listener):
        pg.execute(
            "SELECT pg_notify('realtime_changed_v1', %s)",
            [
                json.dumps(
                    {
                        "id": logged,
                        "table": "violation_ppedetections",
                        "op": "UPDATE",
                        "data": {"id": row_id, "camera_id": 3, "violation_image": "/media/x"},
                    }
                )
            ],
        )
        insert_violation(pg, image="/media/after-the-forgery.jpg")
        await got.wait_for_images({"/media/after-the-forgery.jpg"})
    assert "/media/x" not in got.images()


@pytest.fixture
async def row_stream() -> AsyncIterator[StreamListener]:
    """What django-eventstream registers for one open /events/violations/rows/ stream."""
    listener = StreamListener()
    listener.channels = {"table/*/*"}
    listener.assign_loop()
    manager = get_listener_manager()
    manager.add_listener(listener)
    yield listener
    manager.remove_listener(listener)


async def test_a_row_that_cannot_be_drawn_does_not_keep_the_others_off_the_table(
    row_stream,
) -> None:
    await kinds.arefresh()
    broken = change_message(
        {"id": 7, "table": "violation_ppedetections", "op": "INSERT", "data": {"id": {"x": 1}}}
    )
    broken["frame"] = broken["frame"][:-3]  # not JSON any more
    good = change_message(
        {
            "id": 8,
            "table": "violation_ppedetections",
            "op": "INSERT",
            "data": {"id": 5, "camera_id": 1, "violation_image": "/media/drawn.jpg"},
        }
    )
    wake_row_streams([broken, good])
    [event] = row_stream.channel_items["table/*/*"]
    assert event.id == 8 and "/media/drawn.jpg" in event.data
