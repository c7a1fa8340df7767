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


# --- a neighbour on the same Redis ----------------------------------------------------------


@pytest.fixture
def neighbour_db(db_url: str) -> Iterator[str]:
    """A second deployment's database (staging beside production), migrated."""
    from tests.helpers import manage, scratch_database

    with scratch_database(db_url, f"neighbour_{uuid.uuid4().hex[:8]}") as url:
        manage(url, "migrate", "--noinput")
        yield url


@pytest.mark.e2e
async def test_two_deployments_on_one_redis_see_nothing_of_each_other(
    database_url, neighbour_db, pg, tmp_path
) -> None:
    from django.conf import settings

    from tests.helpers import Stack, manage, next_frame, websocket

    redis = settings.TEST_REDIS_URL.rsplit("/", 1)[0]
    for folder in ("ours", "theirs"):
        (tmp_path / folder).mkdir()
    # Database numbers differ; Redis pub/sub does not care about them.
    ours = Stack.start("redis", database_url, f"{redis}/12", tmp_path / "ours")
    theirs = Stack.start("redis", neighbour_db, f"{redis}/13", tmp_path / "theirs")
    try:
        their_token = manage(neighbour_db, "shell", "-c", ISSUE_TOKEN).strip().splitlines()[-1]
        with psycopg.connect(neighbour_db, autocommit=True) as their_pg:
            # Both logs give out the same ids from here.
            their_pg.execute("SELECT setval('realtime_event_id_seq', %s)", [next_event_id(pg) + 10])
            pg.execute("SELECT setval('realtime_event_id_seq', %s)", [next_event_id(pg) + 10])
            async with websocket(f"{theirs.ws}/ws/violations/?token={their_token}") as ws:
                insert_violation(pg, image="/media/ours.jpg")
                await asyncio.sleep(0.5)  # time for ours to reach theirs, if it could
                insert_violation(their_pg, image="/media/theirs.jpg")
                frame = await next_frame(ws)
                assert frame["data"]["violation_image"] == "/media/theirs.jpg"
                with pytest.raises(TimeoutError):
                    await next_frame(ws, 1.0)
        ours_id = pg.execute(
            "SELECT id FROM realtime_event WHERE data->>'violation_image' = '/media/ours.jpg'"
        ).fetchone()[0]
        assert frame["id"] == ours_id, "the same event id: theirs was not dropped for ours"
    finally:
        ours.stop()
        theirs.stop()


ISSUE_TOKEN = (
    "from django.contrib.auth import get_user_model; from realtime.models import ApiToken;"
    " u = get_user_model().objects.create_user('neighbour'); print(ApiToken.issue(u))"
)


async def test_a_batch_of_another_deployment_is_dropped_even_under_the_same_prefix(pg) -> None:
    """REALTIME_BUS_PREFIX set alike on two deployments: their batches still do not mix."""
    from realtime import bus
    from realtime.bridge import Bridge

    bridge = Bridge()
    got: list[Any] = []
    bridge.subscribe(got.extend)
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.ready.wait(), 10)
        change = {
            "id": 10**12,
            "table": "violation_ppedetections",
            "op": "INSERT",
            "data": {"id": 1},
        }
        foreign = {**bus.batches([change])[0], "deployment": "7000000000000000000/elsewhere"}
        await bus.channel_layer().group_send(bus.GROUP, foreign)
        await bus.publish([{**change, "id": 10**12 + 1}])
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [m["id"] for m in got] == [10**12 + 1]
    assert bridge.foreign == 1
