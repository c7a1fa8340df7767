"""The group messages between the listener and the servers' bridges, over real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime.pipeline import bus
from realtime.pipeline.bus import BATCH_MAX_CHANGES, BATCH_TYPE, ChangeMessage, batches
from realtime.streams.bridge import Bridge

pytestmark = pytest.mark.django_db(transaction=True)


def change(event_id: int, image: str = "/media/x.jpg") -> Any:
    return {
        "id": event_id,
        "table": "violation_humandetections",
        "op": "INSERT",
        "data": {"id": event_id, "camera_id": 1, "violation_image": image},
    }


def test_batches_keep_the_order_and_split_by_count() -> None:
    events = [change(n) for n in range(1, 2 * BATCH_MAX_CHANGES + 2)]
    out = batches(events)
    assert [len(b["changes"]) for b in out] == [BATCH_MAX_CHANGES, BATCH_MAX_CHANGES, 1]
    assert {b["type"] for b in out} == {BATCH_TYPE}
    assert [m["id"] for b in out for m in b["changes"]] == list(range(1, 2 * BATCH_MAX_CHANGES + 2))


def test_batches_split_by_size() -> None:
    big = "/media/" + "z" * 200_000
    out = batches([change(1, big), change(2, big), change(3, big), change(4)])
    # 512 KiB a message at most: two 200 KB rows fit, a third starts the next message.
    assert [[m["id"] for m in b["changes"]] for b in out] == [[1, 2], [3, 4]]


def test_no_events_no_message() -> None:
    assert batches([]) == []


async def test_bridge_takes_batches_and_drops_what_it_dispatched_already() -> None:
    bridge = Bridge()
    got: list[ChangeMessage] = []
    calls: list[int] = []

    def subscriber(messages: list[ChangeMessage]) -> None:
        calls.append(len(messages))
        got.extend(messages)

    bridge.subscribe(subscriber)
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.ready.wait(), 10)
        first = 10**12  # far above any id the log holds: the heal has nothing to add
        await bus.publish([change(first + n) for n in range(4)])
        # A listener's replay: ids already dispatched reach no subscriber again.
        await bus.publish([change(first + 2), change(first + 3), change(first + 4)])
        for _ in range(100):
            if len(got) >= 5:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [m["id"] - first for m in got] == [0, 1, 2, 3, 4]
    # Each batch reaches a subscriber in one call.
    assert calls == [4, 1]


def test_no_bus_message_is_longer_than_a_batch_with_rows_too_long_for_a_frame(redis_url) -> None:
    """A change too long for a frame is reduced before it is batched: no message on Redis
    carries more than a batch's 512 KiB of frames (Redis takes 512 MB a message, and drops
    a subscriber whose output buffer passes 32 MB, or 8 MB for a minute: `CONFIG GET
    client-output-buffer-limit`)."""
    import msgpack
    import redis

    huge = "/media/" + "h" * 1_100_000
    out = batches([change(1, huge), change(2, huge), change(3), change(4, huge)])
    assert [[m["id"] for m in b["changes"]] for b in out] == [[1, 2, 3, 4]]
    sizes = [len(msgpack.packb(batch)) for batch in out]
    assert max(sizes) <= bus.BATCH_MAX_BYTES
    limits = redis.Redis.from_url(redis_url).config_get("client-output-buffer-limit")
    pubsub = str(limits["client-output-buffer-limit"]).split("pubsub ")[1].split()
    assert max(sizes) < min(int(pubsub[0]), int(pubsub[1]))


async def test_a_batch_the_bus_lost_is_read_from_the_log_before_anything_newer(pg) -> None:
    """Issue 29, item 2: the bridge sees the batches' numbers skip, and sends what the bus
    lost (read from the log) before the batch that came after it: commit order holds."""
    from tests.helpers import insert_violation

    bridge = Bridge()
    got: list[int] = []
    bridge.subscribe(lambda messages: got.extend(m["id"] for m in messages))
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.ready.wait(), 10)
        for n in range(3):
            insert_violation(pg, image=f"/media/in-order-{n}.jpg")
        newest = pg.execute("SELECT max(id) FROM realtime_event").fetchone()[0]
        first, lost, last = [
            bus.batches([change]) for change in await changes_of(newest - 2, newest)
        ]
        await bus.channel_layer().group_send(bus.GROUP, first[0])
        # The second never arrives (a Redis hiccup); the third does.
        await bus.channel_layer().group_send(bus.GROUP, last[0])
        for _ in range(100):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert got == [newest - 2, newest - 1, newest]
    assert bridge.healed == 1
    assert lost[0]["seq"] == first[0]["seq"] + 1 == last[0]["seq"] - 1


async def changes_of(after: int, up_to: int) -> list[Any]:
    from channels.db import database_sync_to_async

    from realtime.pipeline import event_log

    changes: list[Any] = await database_sync_to_async(event_log.changes_by_id)(
        list(range(after, up_to + 1))
    )
    return changes
