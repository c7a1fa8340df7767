"""Delivery under faults and load, on real services: every committed row, once per client."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from channels.db import database_sync_to_async

from realtime.pipeline import event_log
from realtime.pipeline.bus import ChangeMessage, change_message, publish_heartbeat
from realtime.pipeline.listener import LogListener, LogListenerSettings
from realtime.streams.bridge import Bridge
from tests.helpers import (
    Stack,
    insert_violation,
    newest_event,
    next_frame,
    sse,
    websocket,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def collect_images(ws: Any, wanted: set[str], timeout: float = 30.0) -> dict[str, int]:
    """How many times each wanted image arrived, reading until all have (or failing)."""
    seen: dict[str, int] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while not wanted <= seen.keys():
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"{len(wanted - seen.keys())} of {len(wanted)} never arrived"
        image = (await next_frame(ws, remaining))["data"]["violation_image"]
        seen[image] = seen.get(image, 0) + 1
    return seen


async def drain(ws: Any, seconds: float) -> list[dict[str, Any]]:
    """Frames that still arrive within `seconds` (to catch late duplicates)."""
    frames = []
    try:
        while True:
            frames.append(await next_frame(ws, seconds))
    except TimeoutError:
        return frames


# --- in-process: the bridge heals what the bus lost -------------------------------------


@asynccontextmanager
async def running_bridge() -> AsyncIterator[tuple[Bridge, list[ChangeMessage]]]:
    """A bridge of this process, and every message it dispatches."""
    bridge = Bridge()
    got: list[ChangeMessage] = []
    bridge.subscribe(got.extend)
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.ready.wait(), 10)
        yield bridge, got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def heal(newest: int, got: list[ChangeMessage], count: int) -> None:
    """Tell the bridge the listener forwarded up to `newest`; wait for `count` messages."""
    await publish_heartbeat(newest)
    for _ in range(100):
        if len(got) >= count:
            break
        await asyncio.sleep(0.05)


async def test_bridge_reads_what_the_bus_lost_from_the_log(db_url, pg) -> None:
    async with running_bridge() as (bridge, got):
        # Committed, but no listener forwards them: as if the bus had dropped them.
        ids = [insert_violation(pg, image=f"/media/lost-{n}.jpg") for n in range(3)]
        newest = newest_event(pg)
        await heal(newest, got, 3)
        await publish_heartbeat(newest)  # a second heartbeat changes nothing
        await asyncio.sleep(0.2)
    logged = pg.execute(
        "SELECT id FROM realtime_event WHERE table_name = 'violation_humandetections'"
        " AND (data->>'id')::bigint = ANY(%s) ORDER BY id",
        [ids],
    ).fetchall()
    assert [m["id"] for m in got] == [row[0] for row in logged]
    assert bridge.healed == 3


async def test_a_heal_across_more_events_than_the_bridge_remembers_resends_none(
    db_url, pg, monkeypatch
) -> None:
    """Ids above the last heal are remembered however many: the heal must not resend them."""
    monkeypatch.setattr("realtime.streams.bridge.RECENT_IDS", 10)
    async with running_bridge() as (bridge, got):
        pg.execute(
            "INSERT INTO violation_humandetections (camera_id, violation_image)"
            " SELECT 2, '/media/remembered-' || n FROM generate_series(1, 40) n"
        )
        newest = newest_event(pg)
        # All forty reached the bridge on the bus, in order.
        bridge.dispatch([change_message(change) for change in await changes_up_to(newest, 40)])
        await heal(newest, got, 41)
        await asyncio.sleep(0.3)
        # And a listener's replay after a failover, of what was healed, is dropped too.
        bridge.dispatch([change_message(change) for change in await changes_up_to(newest, 5)])
    assert len(got) == 40 and bridge.healed == 0
    assert len({m["id"] for m in got}) == 40


@database_sync_to_async
def changes_up_to(newest: int, count: int) -> list[Any]:
    return event_log.changes_after(newest - count, count)


async def test_bridge_reads_a_lost_statement_from_the_log_change_by_change(db_url, pg) -> None:
    async with running_bridge() as (bridge, got):
        before = newest_event(pg)
        pg.execute(
            "INSERT INTO violation_humandetections (camera_id, violation_image)"
            " SELECT 2, '/media/lost-statement-' || n FROM generate_series(1, 150) n"
        )
        newest = newest_event(pg)
        await heal(newest, got, 150)
    logged = pg.execute(
        "SELECT id FROM realtime_changes(%s, %s) ORDER BY id", [before, newest]
    ).fetchall()
    assert [m["id"] for m in got] == [row[0] for row in logged]
    assert [json.loads(m["frame"])["data"]["violation_image"] for m in got] == [
        f"/media/lost-statement-{n}" for n in range(1, 151)
    ]
    assert bridge.healed == 150


async def test_full_notify_queue_leaves_the_insert_committed_and_delivered(db_url, pg) -> None:
    got: list[Any] = []

    async def forward(events: list[Any]) -> None:
        got.extend(events)

    listener = LogListener(LogListenerSettings(conninfo=db_url, catch_up_interval=0.5), forward)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.wait_active(), 10)
        # The trigger treats the queue as full: no NOTIFY at all for this writer.
        pg.execute("SET realtime.notify_queue_limit = 0")
        with psycopg.connect(db_url, autocommit=True) as probe:
            probe.execute("LISTEN realtime_changed_v1")
            row_id = insert_violation(pg, image="/media/queue-full.jpg")
            assert list(probe.notifies(timeout=0.5, stop_after=1)) == []
        for _ in range(100):
            if any(e["data"]["id"] == row_id for e in got):
                break
            await asyncio.sleep(0.05)
    finally:
        pg.execute("RESET realtime.notify_queue_limit")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e["data"]["violation_image"] for e in got if e["data"].get("id") == row_id] == [
        "/media/queue-full.jpg"
    ]


async def test_notification_for_an_unwatched_table_is_skipped(db_url, pg, caplog) -> None:
    got: list[Any] = []

    async def forward(events: list[Any]) -> None:
        got.extend(events)

    caplog.set_level(logging.WARNING, logger="realtime.pipeline.listener")
    listener = LogListener(LogListenerSettings(conninfo=db_url), forward)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.wait_active(), 10)
        pg.execute(
            "SELECT pg_notify('realtime_changed_v1', %s)",
            ['{"id": 999999999999, "table": "payroll", "op": "INSERT", "data": {"salary": 1}}'],
        )
        insert_violation(pg, image="/media/after-forged.jpg")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e["table"] for e in got] == ["violation_humandetections"]
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipped notifications")]
    assert [r.not_in_the_log for r in skipped] == [1]


# --- end to end, on the machine's PostgreSQL and Redis ------------------------------------


@pytest.fixture(scope="module")
def redis_stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    from django.conf import settings

    stack = Stack.start(
        "redis", database_url, settings.TEST_REDIS_URL, tmp_path_factory.mktemp("faults")
    )
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.e2e
@pytest.mark.slow
async def test_listener_killed_at_200_rows_per_second_loses_and_repeats_nothing(
    redis_stack, pg, token
) -> None:
    stack = redis_stack
    images = [f"/media/kill9-{n}.jpg" for n in range(600)]
    started = threading.Event()

    def insert_at_200_per_second() -> None:
        begin = time.monotonic()
        for n, image in enumerate(images):
            if n == 100:
                started.set()
            insert_violation(pg, image=image)
            time.sleep(max(0.0, begin + (n + 1) / 200 - time.monotonic()))

    async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
        inserting = asyncio.create_task(asyncio.to_thread(insert_at_200_per_second))
        await asyncio.to_thread(started.wait, 10)
        for listener in stack.running_listeners():
            listener.kill()  # SIGKILL, mid-stream
        stack.start_listener().wait_for_log("listener active")
        await inserting
        seen = await collect_images(ws, set(images))
        late = await drain(ws, 2.0)
    repeated = {image: n for image, n in seen.items() if n > 1}
    assert repeated == {}
    assert not [f for f in late if f["data"]["violation_image"] in seen]


@pytest.mark.e2e
@pytest.mark.slow
async def test_burst_of_10000_rows_and_2000_transactions_reach_every_client(
    redis_stack, pg, token
) -> None:
    stack = redis_stack
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}", max_size=None) as ws,
        sse(f"{stack.http}/events/violations/", auth) as events,
    ):
        pg.execute(
            "INSERT INTO violation_ppedetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " SELECT n % 50, CURRENT_DATE, LOCALTIME(0), '/media/burst-' || n || '.jpg'"
            " FROM generate_series(1, 10000) AS n"
        )
        burst = {f"/media/burst-{n}.jpg" for n in range(1, 10001)}
        assert set((await collect_images(ws, burst, timeout=120)).keys()) >= burst
        seen_sse: set[str] = set()
        while not burst <= seen_sse:
            seen_sse.add((await events.next_change(timeout=60))["data"]["violation_image"])

        def single_row_transactions() -> None:
            for n in range(2000):
                insert_violation(pg, image=f"/media/txn-{n}.jpg")

        await asyncio.to_thread(single_row_transactions)
        singles = {f"/media/txn-{n}.jpg" for n in range(2000)}
        await collect_images(ws, singles, timeout=120)
        while not singles <= seen_sse:
            seen_sse.add((await events.next_change(timeout=60))["data"]["violation_image"])


@pytest.mark.e2e
@pytest.mark.slow
async def test_connections_idle_for_60_s_still_receive(redis_stack, pg, token) -> None:
    stack = redis_stack
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
        sse(f"{stack.http}/events/violations/", {"Authorization": f"Bearer {token}"}) as events,
    ):
        await asyncio.sleep(61)
        row_id = insert_violation(pg, image="/media/after-a-minute.jpg")
        assert (await next_frame(ws))["data"]["id"] == row_id
        assert (await events.next_change())["data"]["id"] == row_id
