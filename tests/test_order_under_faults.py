"""Commit order while a server's database connections are cut (issue 29, item 2).

One writer commits rows in turn (so commit order is id order) at about 150 rows a second;
meanwhile the server's own database connections (not the listener's) are terminated
again and again, as a PgBouncer restart, a failover or an administrator does. Every
connected client, on every route, must get every row once, in commit order.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
import psycopg
import pytest

from tests.helpers import Stack, insert_violation, next_frame, sse, websocket

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROWS = 1200
RATE = 150.0
CUTS = 8


@pytest.fixture
def stack(database_url: str, tmp_path: Any) -> Iterator[Stack]:
    from django.conf import settings

    stack = Stack.start("redis", database_url, settings.TEST_REDIS_URL, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


def cut_server_connections(db_url: str, server_pid: int) -> int:
    """pg_terminate_backend() of every database connection the server process holds."""
    ports = {
        c.laddr.port
        for c in psutil.Process(server_pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == 5432
    }
    if not ports:
        return 0
    with psycopg.connect(db_url, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND client_port = ANY(%s)",
            [sorted(ports)],
        ).fetchone()
    return int(cut[0]) if cut else 0


def write_steadily(db_url: str, marker: str, written: list[int]) -> None:
    with psycopg.connect(db_url, autocommit=True) as writer:
        started = time.monotonic()
        for n in range(ROWS):
            written.append(insert_violation(writer, image=f"{marker}{n}"))
            time.sleep(max(0.0, started + (n + 1) / RATE - time.monotonic()))


async def test_every_route_keeps_commit_order_while_the_servers_connections_are_cut(
    stack, db_url, token, marker
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}", max_size=None) as ws,
        websocket(f"{stack.ws}/ws/table/?token={token}", max_size=None) as table,
        sse(f"{stack.http}/events/violations/", auth) as events,
        sse(f"{stack.http}/events/violations/rows/?kind=human", auth) as rows,
    ):
        written: list[int] = []
        writer = threading.Thread(target=write_steadily, args=(db_url, marker, written))
        writer.start()
        cuts = 0
        for _ in range(CUTS):
            await asyncio.sleep(ROWS / RATE / (CUTS + 1))
            cuts += await asyncio.to_thread(cut_server_connections, db_url, stack.server.pid)
        await asyncio.to_thread(writer.join)
        assert cuts >= CUTS, "the server's connections were cut each time"

        async def frames_of(socket: Any) -> list[int]:
            got: list[int] = []
            while len(got) < ROWS:
                frame = await next_frame(socket, 30)
                if frame["data"]["violation_image"].startswith(marker):
                    got.append(frame["data"]["id"])
            return got

        async def changes_of(stream: Any) -> list[int]:
            got: list[int] = []
            while len(got) < ROWS:
                change = await stream.next_change(30)
                if change["data"]["violation_image"].startswith(marker):
                    got.append(change["data"]["id"])
            return got

        async def rows_of(stream: Any) -> list[int]:
            got: list[int] = []
            while len(got) < ROWS:
                event = await stream.next_event(30)
                if event.event == "message" and marker in event.data:
                    got.append(int(event.data.split('id="violation-human-', 1)[1].split('"')[0]))
            return got

        received = {
            "/ws/violations/": await frames_of(ws),
            "/ws/table/": await frames_of(table),
            "/events/violations/": await changes_of(events),
            "/events/violations/rows/": await rows_of(rows),
        }
    for route, got in received.items():
        assert sorted(set(got)) == written, f"{route}: every row, once"
        out_of_order = [(a, b) for a, b in itertools.pairwise(got) if b < a]
        assert not out_of_order, f"{route}: rows after a later one: {out_of_order[:5]}"
