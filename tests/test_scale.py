"""1,000 WebSocket and 1,000 SSE clients on one server process all receive a row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import Stack, insert_violation

# Alone, as tests/test_connect_crowd.py: thousands of clients of one server process within
# fixed bounds measure this machine's cores, not what pytest-xdist's other workers leave.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.alone,
    pytest.mark.django_db(transaction=True),
]

CLIENTS = 1000


@pytest.fixture
def stack(database_url: str, tmp_path: Any) -> Iterator[Stack]:
    from django.conf import settings

    # One token for every client: one user holding thousands of streams.
    stack = Stack.start(
        "redis",
        database_url,
        settings.TEST_REDIS_URL,
        tmp_path,
        REALTIME_MAX_STREAMS_PER_USER="100000",
    )
    try:
        yield stack
    finally:
        stack.stop()


async def open_sse(port: int, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /events/violations/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, status
    return reader, writer


async def sse_image(reader: asyncio.StreamReader) -> str:
    """The image of the next change (a `message` event; not a heartbeat)."""
    event = b"message"
    while line := await reader.readline():
        if line.startswith(b"event: "):
            event = line[7:].strip()
        elif line.strip() == b"":
            event = b"message"
        elif line.startswith(b"data: {") and event == b"message":
            return str(json.loads(line[6:])["data"]["violation_image"])
    raise EOFError


async def test_a_thousand_of_each_receive_a_row(stack, pg, token) -> None:
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}"
    sockets, streams = [], []
    try:
        for _ in range(CLIENTS):
            sockets.append(await connect(url, open_timeout=30))
            streams.append(await open_sse(stack.port, token))
        image = "/media/for-everyone.jpg"
        insert_violation(pg, image=image)

        async def ws_image(ws: Any) -> str:
            return str(json.loads(await ws.recv())["data"]["violation_image"])

        got = await asyncio.wait_for(
            asyncio.gather(*(ws_image(ws) for ws in sockets), *(sse_image(r) for r, _ in streams)),
            timeout=60,
        )
        assert got == [image] * (2 * CLIENTS)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for _, writer in streams:
            writer.close()


async def test_a_storm_of_handshakes_is_accepted(stack, token) -> None:
    """Every screen in a plant reconnecting at once (after a network blip) gets back in."""
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}"
    results = await asyncio.gather(
        *(connect(url, open_timeout=30) for _ in range(400)), return_exceptions=True
    )
    sockets = [r for r in results if not isinstance(r, BaseException)]
    try:
        assert len(sockets) == 400, [r for r in results if isinstance(r, BaseException)][:3]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
