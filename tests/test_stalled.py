"""A WebSocket client that stops reading does not slow the others, is dropped once it
leaves more than REALTIME_CLIENT_MAX_BUFFER unread, and resumes by id with ?lastEventId=."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.helpers import Stack, insert_violation, newest_event, next_frame, sse

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BUFFER_LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    from django.conf import settings

    stack = Stack.start(
        "redis",
        database_url,
        settings.TEST_REDIS_URL,
        tmp_path_factory.mktemp("stalled"),
        REALTIME_CLIENT_MAX_BUFFER=str(BUFFER_LIMIT),
        REALTIME_CLIENT_STALL_TIMEOUT="3",
    )
    try:
        yield stack
    finally:
        stack.stop()


async def test_resume_by_id_replays_exactly_what_came_after(stack, pg, token) -> None:
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}"
    after = newest_event(pg)
    missed = [insert_violation(pg, image=f"/media/ws-missed-{n}.jpg") for n in range(3)]
    async with connect(f"{url}&lastEventId={after}") as ws:
        replayed = [await next_frame(ws) for _ in missed]
        live_id = insert_violation(pg, image="/media/ws-live.jpg")
        live = await next_frame(ws)
    assert [f["data"]["id"] for f in replayed] == missed
    assert live["data"]["id"] == live_id


async def test_resume_inside_a_statement_replays_the_rest_of_it(stack, pg, token) -> None:
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}"
    after = newest_event(pg)
    async with connect(url) as live:
        pg.execute(
            "INSERT INTO violation_humandetections (camera_id, violation_image)"
            " SELECT 3, '/media/ws-statement-' || n FROM generate_series(1, 150) n"
        )
        ids = [
            row[0]
            for row in pg.execute(
                "SELECT id FROM realtime_changes(%s, %s) ORDER BY id", [after, newest_event(pg)]
            ).fetchall()
        ]
        # Delivered live first, so that nothing of it is still on its way when the
        # second client connects.
        while (await next_frame(live))["id"] != ids[-1]:
            pass
    async with connect(f"{url}&lastEventId={ids[49]}") as ws:
        replayed = [await next_frame(ws) for _ in range(100)]
    assert [frame["id"] for frame in replayed] == ids[50:]
    assert [frame["data"]["violation_image"] for frame in replayed] == [
        f"/media/ws-statement-{n}" for n in range(51, 151)
    ]


@pytest.mark.parametrize("garbage", ["abc", "-1", "9" * 40])
async def test_a_garbage_resume_point_is_refused(stack, token, garbage) -> None:
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}&lastEventId={garbage}"
    with pytest.raises(Exception, match="403"):
        async with connect(url):
            pass


async def test_a_stalled_client_slows_nobody_is_dropped_and_resumes(stack, pg, token) -> None:
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}"
    before = newest_event(pg)
    # A frozen tab: a tiny receive buffer, and the client library stops reading the socket
    # after one frame (max_queue=1).
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stack.port))
    stalled = await connect(url, sock=sock, max_queue=1)
    mark = len(stack.server.log())
    try:
        async with connect(url, max_size=None) as reader:
            # About 10 MB in all, far past what the kernel buffers and the limit hold.
            images = [f"/media/stall-{n}-" + "x" * 40_000 + ".jpg" for n in range(250)]

            def insert_all() -> None:
                for image in images:
                    insert_violation(pg, image=image)

            inserting = asyncio.create_task(asyncio.to_thread(insert_all))  # reader keeps reading
            got = [(await next_frame(reader, 15))["data"]["violation_image"] for _ in images]
            await inserting
            assert got == images, "the reading client got everything, in order"
        stack.server.wait_for_log("dropping a websocket client that stopped reading", after=mark)
    finally:
        await stalled.close()
    async with connect(f"{url}&lastEventId={before}", max_size=None) as resumed:
        replayed = [(await next_frame(resumed, 15))["data"]["violation_image"] for _ in images]
    assert replayed == images


async def test_a_stalled_sse_client_is_dropped_and_resumes(stack, pg, token) -> None:
    before = newest_event(pg)
    stalled = socket.socket()  # sends its request, then never reads
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", stack.port))
    stalled.sendall(
        f"GET /events/violations/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    mark = len(stack.server.log())
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with sse(f"http://127.0.0.1:{stack.port}/events/violations/", auth) as reader:
            images = [f"/media/sse-stall-{n}-" + "y" * 40_000 + ".jpg" for n in range(250)]

            def insert_all() -> None:
                for image in images:
                    insert_violation(pg, image=image)

            inserting = asyncio.create_task(asyncio.to_thread(insert_all))
            got = [(await reader.next_change(15))["data"]["violation_image"] for _ in images]
            await inserting
            assert got == images, "the reading client got everything, in order"
        # The stalled stream waits on its client only while it has something to send: it
        # may have written its last chunk just under the limit. More rows make it wait,
        # then drop the client.
        dropped = "dropping an SSE client that stopped reading"
        for n in range(40):
            if dropped in stack.server.log()[mark:]:
                break
            insert_violation(pg, image=f"/media/sse-stall-more-{n}-" + "y" * 40_000 + ".jpg")
            await asyncio.sleep(0.5)
        stack.server.wait_for_log(dropped, after=mark)
    finally:
        stalled.close()
    url = f"http://127.0.0.1:{stack.port}/events/violations/"
    async with sse(url, {**auth, "Last-Event-ID": str(before)}) as resumed:
        replayed = [(await resumed.next_change(15))["data"]["violation_image"] for _ in images]
    assert replayed == images


async def test_the_server_internals_the_streams_write_through_are_found(stack, token) -> None:
    """Daphne's and Twisted's internals that write a change to every stream at once
    (realtime.streams.server_internals): an upgrade that moved them fails here."""
    url = f"ws://127.0.0.1:{stack.port}/ws/violations/?token={token}"
    auth = {"Authorization": f"Bearer {token}"}
    async with sse(f"http://127.0.0.1:{stack.port}/events/violations/", auth), connect(url):
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{stack.port}/healthz")).json()
    assert health["server_internals"] == {
        "pending_bytes": "ok",
        "request_threads": "ok",
        "direct_writer": "ok",
        "direct_body_writer": "ok",
        "send_at_once": "ok",
    }
