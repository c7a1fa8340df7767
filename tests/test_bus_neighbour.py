"""A neighbour on the same Redis cannot show, hide or bring back anything (issue #22, finding 2).

Real Daphne, real listen_notify, the machine's Redis. The neighbour does what the probe
did: it finds the deployment's group with `PUBSUB CHANNELS`, and publishes on it with
channels-redis' own pub/sub layer (or replays bytes it sniffed), as anyone who can reach
that Redis can.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgpack
import pytest
import redis.asyncio as aioredis
from channels_redis.pubsub import RedisPubSubChannelLayer

from realtime.pipeline import bus, signing
from tests.helpers import (
    SSEStream,
    Stack,
    insert_violation,
    listen_notify,
    manage,
    newest_event,
    next_frame,
    sse,
    websocket,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ISSUE_TOKEN = (
    "from django.contrib.auth import get_user_model; from realtime.models import ApiToken;"
    " u = get_user_model().objects.create_superuser('operator'); print(ApiToken.issue(u))"
)
GROUP_SUFFIX = f"__group__{bus.GROUP}"


def operator_token(database_url: str) -> str:
    return manage(database_url, "shell", "-c", ISSUE_TOKEN).strip().splitlines()[-1]


async def sniffed_group(redis_url: str, prefix: str) -> str:
    """The deployment's group channel, as `PUBSUB CHANNELS` lists it to anyone (awaited:
    the server's bridge subscribes on its first connection)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(200):
            channels = await client.pubsub_channels(f"*{GROUP_SUFFIX}")
            listed = {c.decode() if isinstance(c, bytes) else c for c in channels}
            if prefix + GROUP_SUFFIX in listed:
                return prefix + GROUP_SUFFIX
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise AssertionError(f"{prefix + GROUP_SUFFIX} not listed by PUBSUB CHANNELS")


async def neighbour_sends(redis_url: str, prefix: str, *messages: Mapping[str, Any]) -> None:
    """What the probe did: channels-redis' pub/sub layer under the sniffed prefix."""
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)
    try:
        for message in messages:
            await layer.group_send(bus.GROUP, message)
    finally:
        await layer.flush()


def forged_change(pg: Any, image: str) -> Any:
    """A change as the listener would send it, copied from a real one in the log, with
    another image and an event id the log does not hold."""
    real = insert_violation(pg, image="/media/the-model.jpg")
    [(data,)] = pg.execute(
        "SELECT data FROM realtime_event WHERE table_name = 'violation_humandetections'"
        " AND (data->>'id')::bigint = %s",
        [real],
    ).fetchall()
    return {
        "id": newest_event(pg) + 1000,
        "table": "violation_humandetections",
        "op": "INSERT",
        "data": {**data, "id": real + 1000, "violation_image": image},
    }


async def next_row(rows: SSEStream) -> str:
    """The next `<tr>` of a rows stream."""
    while True:
        event = await rows.next_event()
        if event.event == "message":
            return event.data


@asynccontextmanager
async def operator_streams(stack: Stack, token: str) -> AsyncIterator[tuple[Any, SSEStream]]:
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
        sse(f"{stack.http}/events/violations/rows/", auth) as rows,
    ):
        yield ws, rows


async def test_a_neighbour_forging_a_batch_reaches_no_client(
    database_url, redis_url, pg, tmp_path, marker
) -> None:
    stack = Stack.start("redis", database_url, redis_url, tmp_path)
    try:
        token = operator_token(database_url)
        async with operator_streams(stack, token) as (ws, rows):
            forged = bus.batches([forged_change(pg, "/media/forged.jpg")])[0]
            await next_frame(ws)  # the model row, which the neighbour copied
            await next_row(rows)
            prefix = bus.bus_prefix()
            group = await sniffed_group(redis_url, prefix)
            await neighbour_sends(redis_url, prefix, forged)
            # One that knows the format but not the key; and bytes that are no message.
            sealed = signing.seal(msgpack.packb(forged), uuid.uuid4().bytes, time.time(), "a" * 50)
            await publish_raw(redis_url, group, sealed, b"\xc1 not msgpack")
            # Then a real violation: the bus keeps the order, so a forged row would be first.
            insert_violation(pg, image=marker)
            frame = await next_frame(ws)
            assert frame["data"]["violation_image"] == marker, "a forged row on /ws/violations/"
            row = await next_row(rows)
            assert marker in row and "forged" not in row, "a forged row on the rows stream"
            refused = await refusals(stack, token)
        assert refused == {"unsigned": 2.0, "forged": 1.0}
        assert "bridge lost the channel layer" not in stack.server.log(), "no stall, no retry"
    finally:
        stack.stop()


async def publish_raw(redis_url: str, channel: str, *payloads: bytes) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        for payload in payloads:
            await client.publish(channel, payload)
    finally:
        await client.aclose()


async def refusals(stack: Stack, token: str) -> dict[str, float]:
    """What the server's /metrics counts as refused on the bus, by reason."""
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{stack.http}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
    found = re.findall(
        r'^realtime_bus_messages_refused_total\{reason="([a-z]+)"\} ([0-9.]+)$',
        response.text,
        re.MULTILINE,
    )
    return {reason: float(count) for reason, count in found}


async def test_a_forged_heartbeat_does_not_make_a_stopped_pipeline_look_live(
    database_url, redis_url, pg, tmp_path
) -> None:
    prefix = f"rt.{uuid.uuid4().hex[:12]}."
    stack = Stack.start(
        "redis",
        database_url,
        redis_url,
        tmp_path,
        REALTIME_BUS_PREFIX=prefix,
        REALTIME_HEARTBEAT_SECONDS="1",
    )
    try:
        # The listener goes on forwarding (the database says it is active), but on a bus
        # this server does not hear: its screens must say they are not live.
        [listener] = stack.running_listeners()
        listener.stop()
        elsewhere = {**stack.env, "REALTIME_BUS_PREFIX": f"rt.cut-off-{uuid.uuid4().hex[:8]}."}
        stack.listeners.append(
            listen_notify(elsewhere, tmp_path / "listen_notify-cut-off.log").start()
        )
        stack.listeners[-1].wait_for_log("listener active")
        token = operator_token(database_url)
        auth = {"Authorization": f"Bearer {token}"}
        async with sse(f"{stack.http}/events/violations/", auth) as events:
            while "hears nothing from the listener" not in (await pipeline(events, 40))["reason"]:
                pass
            heartbeat = {
                "type": bus.HEARTBEAT_TYPE,
                "newest_id": newest_event(pg),
                "deployment": bus.deployment(),
            }
            forging = asyncio.create_task(keep_sending(redis_url, prefix, heartbeat))
            try:
                # The server works the state out every 2 s and tells every stream at once
                # when it changes; four heartbeats a second apart span two of its checks.
                states = [await pipeline(events, 10) for _ in range(4)]
            finally:
                forging.cancel()
                await asyncio.gather(forging, return_exceptions=True)
            refused = await refusals(stack, token)
        assert [s["pipeline"] for s in states] == ["down"] * 4, states
        assert refused.get("unsigned", 0) >= 4, refused
    finally:
        stack.stop()


async def pipeline(events: SSEStream, timeout: float) -> dict[str, str]:
    """The pipeline's state in the stream's next heartbeat."""
    while True:
        event = await events.next_event(timeout, heartbeats=True)
        if event.event == "heartbeat":
            state: dict[str, str] = json.loads(event.data)
            return state


async def keep_sending(redis_url: str, prefix: str, message: dict[str, Any]) -> None:
    while True:
        await neighbour_sends(redis_url, prefix, message)
        await asyncio.sleep(0.25)


async def test_a_replayed_genuine_message_does_not_bring_an_old_event_back(
    database_url, redis_url, pg, tmp_path, marker
) -> None:
    max_age = 2.0
    stack = Stack.start(
        "redis", database_url, redis_url, tmp_path, REALTIME_BUS_MAX_AGE=str(max_age)
    )
    try:
        token = operator_token(database_url)
        group = await sniffed_group(redis_url, bus.bus_prefix())
        sniffer = aioredis.Redis.from_url(redis_url)
        async with sniffer.pubsub() as sniffing:
            await sniffing.subscribe(group)
            old = insert_violation(pg, image="/media/deleted-since.jpg")
            sniffed = await message_with(sniffing, b"/media/deleted-since.jpg")
            sniffed_at = time.time()
        pg.execute("DELETE FROM violation_humandetections WHERE id = %s", [old])
        stack.restart_server()  # a bridge that has dispatched nothing yet
        async with operator_streams(stack, token) as (ws, rows):
            # A genuine message older than the bus accepts (wall clock: nothing to await).
            await asyncio.sleep(max(0.0, sniffed_at + max_age + 0.5 - time.time()))
            await sniffer.publish(group, sniffed)
            insert_violation(pg, image=marker)
            frame = await next_frame(ws)
            assert frame["data"]["violation_image"] == marker, "a deleted violation came back"
            row = await next_row(rows)
            assert marker in row and "deleted-since" not in row, "on the rows stream too"
            assert await refusals(stack, token) == {"expired": 1.0}
        await sniffer.aclose()
    finally:
        stack.stop()


async def message_with(sniffing: Any, needle: bytes, timeout: float = 15.0) -> bytes:
    """The first message on the sniffed channel whose bytes hold `needle`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await sniffing.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is not None and needle in message["data"]:
            data: bytes = message["data"]
            return data
    raise AssertionError(f"no message with {needle!r} on the bus")
