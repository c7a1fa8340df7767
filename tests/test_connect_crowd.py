"""A crowd of SSE connects to one Daphne process whose database pool is far smaller than
the crowd: every one is let in.

Issue 27 measured 8,000 connects at 250 a second to one Daphne: 74 % got an HTTP 500
(`PoolTimeout`). Each connect took a pooled connection for its token and kept it until its
view returned, through every wait in between (the event loop, its thread's turn among
hundreds); its first read of the log waited for one in a thread of its own. Past about
2,000 connects the waits outgrew the pool's 10 s. Here: 4,000 at 250 a second (one in
three fresh, two resuming with Last-Event-ID, on both routes) and a pool of 2; before the
fix 2,728 of them failed (500s, and no answer within 60 s).
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Stack, insert_violation, newest_event

# Alone: what one Daphne process admits at 250 connects a second is this machine's cores'
# to measure; beside two pytest-xdist workers' tests it was not (21 of 4,000 waited past 60 s).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.alone,
    pytest.mark.django_db(transaction=True),
]

CONNECTS = 4000
PER_SECOND = 250
BACKLOG = 50  # changes each resuming stream replays
# Fresh, resuming, resuming the rows: in turn.
KINDS = (
    ("/events/violations/", False),
    ("/events/violations/", True),
    ("/events/violations/rows/", True),
)


@pytest.fixture
def stack(database_url: str, tmp_path: Any) -> Iterator[Stack]:
    # A socket per client, here and in Daphne (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * CONNECTS + 1000
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    started = Stack.start(
        "memory",
        database_url,
        None,
        tmp_path,
        REALTIME_DB_POOL_SIZE="2",
        REALTIME_MAX_STREAMS_PER_USER="100000",
    )
    try:
        yield started
    finally:
        started.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def connect(
    port: int, path: str, token: str, last_event_id: int | None
) -> tuple[str, asyncio.StreamWriter | None]:
    """Opens an SSE stream: "open" (its stream-open came) and its socket, or what came
    instead."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return repr(exc), None
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n{resume}\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        rest = await reader.read(300)
        writer.close()
        return (status + rest).decode(errors="replace"), None
    while line := await reader.readline():
        if line.rstrip(b"\r\n") == b"event: stream-open":
            return "open", writer
    writer.close()
    return "closed before stream-open", None


async def test_a_crowd_of_connects_gets_in_with_a_pool_of_two(stack, pg, token) -> None:
    resume_from = newest_event(pg)
    for n in range(BACKLOG):
        insert_violation(pg, image=f"/media/before-the-crowd-{n}.jpg")
    loop = asyncio.get_running_loop()
    start = loop.time()
    attempts = []
    for n in range(CONNECTS):
        path, resumes = KINDS[n % len(KINDS)]
        attempt = connect(stack.port, path, token, resume_from if resumes else None)
        attempts.append(asyncio.ensure_future(asyncio.wait_for(attempt, 60)))
        await asyncio.sleep(max(0.0, start + (n + 1) / PER_SECOND - loop.time()))
    results = await asyncio.gather(*attempts, return_exceptions=True)
    try:
        outcomes = [repr(r) if isinstance(r, BaseException) else r[0] for r in results]
        failed = Counter(o.partition("\r\n")[0] for o in outcomes if o != "open")
        assert not failed, f"{failed.total()} of {CONNECTS} not let in: {dict(failed)}"
        assert "PoolTimeout" not in stack.server.log()
    finally:
        for result in results:
            if not isinstance(result, BaseException) and result[1] is not None:
                result[1].close()
