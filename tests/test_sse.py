"""The SSE stream loop (realtime.streams.sse) against the real event log, driven in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from django_eventstream.event import Event as DjangoEvent
from django_eventstream.utils import sse_encode_event
from django_eventstream.views import Listener, get_listener_manager

from realtime.models import EventLogRow
from realtime.pipeline import event_log
from realtime.pipeline.bus import ChangeMessage, change_message
from realtime.pipeline.changes import ChangeEvent
from realtime.pipeline.positions import Position
from realtime.streams import liveness, sse, sse_fanout
from realtime.streams.liveness import PipelineWatch
from realtime.streams.names import JSON_STREAM as SSE_CHANNEL
from realtime.streams.sse_fanout import queue_for_streams, wake_sse_streams
from tests.helpers import event_number, insert_violation, newest_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("sse-reader", password="a-long-password-1")


@pytest.fixture(autouse=True)
def pipeline(monkeypatch: pytest.MonkeyPatch) -> PipelineWatch:
    """A live pipeline for each test: the process-wide watch is left down by a runtime
    another test ran in this process (test_runtime.py: no listener there), and which tests
    share a process changes with pytest-xdist's split."""
    watch = PipelineWatch()
    watch.on_change(sse_fanout.wake_every_stream)
    monkeypatch.setattr(liveness, "watch", watch)
    return watch


def open_stream(
    user: Any, last_id: int | None = None, channel: str = SSE_CHANNEL
) -> tuple[AsyncGenerator[bytes, None], Listener]:
    listener = Listener()
    listener.user_id = user.pk
    listener.channels = {channel}
    position = None if last_id is None else Position(last_id)
    return sse.stream(user, channel, position, listener, None), listener


async def next_chunk(body: AsyncIterator[bytes]) -> str:
    return (await asyncio.wait_for(anext(body), 5)).decode()


async def waiting(body: AsyncIterator[bytes]) -> asyncio.Task[str]:
    """The stream's next chunk, once the stream waits for the bridge (it has no I/O to do
    before that). Queued before, a change would count as arriving during the log read."""
    chunk = asyncio.ensure_future(next_chunk(body))
    await asyncio.sleep(0.1)
    return chunk


@database_sync_to_async
def newest_logged(count: int) -> list[ChangeEvent]:
    """The newest events of the log, oldest first."""
    ids = EventLogRow.objects.order_by("-id").values_list("id", flat=True)[:count]
    return event_log.changes_by_id(sorted(ids))


def ids_in(chunk: str) -> list[int]:
    return [event_number(line[4:]) for line in chunk.splitlines() if line.startswith("id: ")]


async def test_each_change_is_sent_to_every_stream_as_django_eventstream_encodes_it(user) -> None:
    first, _ = open_stream(user)
    second, _ = open_stream(user)
    assert "event: stream-open" in await next_chunk(first)
    assert "event: stream-open" in await next_chunk(second)
    chunks = [await waiting(first), await waiting(second)]
    message = change_message({"id": 7, "table": "t", "op": "INSERT", "data": {"id": 1}})
    wake_sse_streams([message])
    expected = sse_encode_event("message", message["frame"], event_id=f"{SSE_CHANNEL}:7")
    assert [await chunk for chunk in chunks] == [expected, expected]
    await first.aclose()
    await second.aclose()
    assert SSE_CHANNEL not in get_listener_manager().listeners_by_channel


async def test_each_stream_tells_its_client_when_to_come_back_spread_over_the_setting(
    user, settings
) -> None:
    """Cut at once (a restart), EventSources come back after their reconnection time: the
    browsers' default is the same 3 s for all, and a crowd came back as one burst."""
    settings.REALTIME_SSE_RECONNECT_WITHIN = 8
    waits = []
    for _ in range(12):
        body, _listener = open_stream(user)
        opening = await next_chunk(body)
        await body.aclose()
        [retry] = [line[7:] for line in opening.splitlines() if line.startswith("retry: ")]
        waits.append(int(retry))
    assert all(1000 <= wait <= 8000 for wait in waits), waits
    assert len(set(waits)) > 1, waits


async def test_streams_ended_by_a_database_error_come_back_spread_after_the_retry_time(
    user, settings, monkeypatch
) -> None:
    """Every stream of a process ends when the database goes; they all came back 5 s later,
    at once, to a database just back."""
    from django.db import OperationalError

    async def database_gone(*args: Any) -> Any:
        raise OperationalError("the database went away")

    monkeypatch.setattr(sse, "_read_from_log", database_gone)
    settings.REALTIME_SSE_RECONNECT_WITHIN = 8
    waits = []
    for _ in range(12):
        body, _listener = open_stream(user)
        ending = await next_chunk(body)
        with pytest.raises(StopAsyncIteration):
            await next_chunk(body)
        [retry] = [line[7:] for line in ending.splitlines() if line.startswith("retry: ")]
        waits.append(int(retry))
    assert all(5000 <= wait <= 13000 for wait in waits), waits
    assert len(set(waits)) > 1, waits


async def test_an_event_queued_on_two_channels_carries_each_channels_id(user) -> None:
    rows_channel = "table/*/*"
    first, _ = open_stream(user)
    second, _ = open_stream(user, channel=rows_channel)
    await next_chunk(first)
    await next_chunk(second)
    chunks = [await waiting(first), await waiting(second)]
    event = DjangoEvent(SSE_CHANNEL, "message", "<tr></tr>", id=9)
    queue_for_streams(SSE_CHANNEL, [event])
    queue_for_streams(rows_channel, [event])
    assert [ids_line(await chunk) for chunk in chunks] == [
        f"id: {SSE_CHANNEL}:9",
        f"id: {quote(rows_channel)}:9",
    ]
    await first.aclose()
    await second.aclose()


def ids_line(chunk: str) -> str:
    return next(line for line in chunk.splitlines() if line.startswith("id: "))


LIVE = 'event: heartbeat\ndata: {"pipeline": "live", "reason": ""}\n\n'


async def test_a_quiet_stream_sends_heartbeats_with_the_pipeline_state(user, settings) -> None:
    settings.REALTIME_HEARTBEAT_SECONDS = 0.1
    body, _ = open_stream(user)
    assert (await next_chunk(body)).endswith("event: stream-open\ndata:\n\n" + LIVE)
    assert await next_chunk(body) == LIVE
    assert await next_chunk(body) == LIVE
    await body.aclose()


async def test_a_change_of_the_pipeline_state_reaches_a_quiet_stream_at_once(
    user, pipeline
) -> None:
    """No listener: every stream of the process says so in a heartbeat, without waiting
    out its quiet interval (10 s)."""
    watch = pipeline
    body, _ = open_stream(user)
    await next_chunk(body)
    chunk = await waiting(body)
    watch.listener = {"state": "down"}
    watch.update()
    down = (
        '{"pipeline": "down", "reason": "no listener is forwarding changes", "code": "no-listener"}'
    )
    assert await asyncio.wait_for(chunk, 2) == f"event: heartbeat\ndata: {down}\n\n"
    watch.listener = {"state": "active", "lag_seconds": 0.0}
    watch.update()
    assert await next_chunk(body) == LIVE
    await body.aclose()


async def test_a_stream_that_overflowed_reads_the_rest_from_the_log(user, pg) -> None:
    body, listener = open_stream(user, newest_event(pg))
    await next_chunk(body)
    inserted = [insert_violation(pg, image=f"/media/log-{n}.jpg") for n in range(3)]
    logged = await newest_logged(3)
    # The bridge got the first and no room for the others (STREAM_PENDING_MAX).
    chunk = await waiting(body)
    wake_sse_streams([change_message(logged[0])])
    listener.overflow = True
    got = ids_in(await chunk)
    while len(got) < 3:
        got += ids_in(await next_chunk(body))
    assert got == [change["id"] for change in logged]
    assert [change["data"]["id"] for change in logged] == inserted
    await body.aclose()


async def test_a_kicked_stream_gets_the_error_and_ends(user) -> None:
    body, _ = open_stream(user)
    await next_chunk(body)
    chunk_task = await waiting(body)
    get_listener_manager().kick(user.pk, SSE_CHANNEL)
    chunk = await chunk_task
    assert "event: stream-error" in chunk
    assert json.loads(chunk.split("data: ", 1)[1])["condition"] == "forbidden"
    with pytest.raises(StopAsyncIteration):
        await next_chunk(body)


async def test_a_reader_without_access_gets_forbidden_and_nothing_else(user) -> None:
    user.is_active = False
    await database_sync_to_async(user.save)()
    body, _ = open_stream(user)
    chunk = await next_chunk(body)
    assert chunk.startswith("event: stream-error")
    assert json.loads(chunk.split("data: ", 1)[1])["condition"] == "forbidden"
    with pytest.raises(StopAsyncIteration):
        await next_chunk(body)


async def test_events_queued_while_the_log_is_read_are_not_sent_twice(
    user, pg, monkeypatch
) -> None:
    """The stream reads the log again then, from the last event it sent, not from the start."""
    start = newest_event(pg)
    for n in range(3):
        insert_violation(pg, image=f"/media/read-twice-{n}.jpg")
    logged = await newest_logged(3)
    real_read = sse.read_log
    reads = 0

    async def read_while_the_bridge_queues(*args: Any) -> Any:
        nonlocal reads
        response = await real_read(*args)
        reads += 1
        if reads == 1:
            # The newest row reaches the bridge live while the replay is being read.
            wake_sse_streams([change_message(logged[-1])])
        return response

    monkeypatch.setattr(sse, "read_log", read_while_the_bridge_queues)
    body, _ = open_stream(user, start)
    sent = ids_in(await next_chunk(body))
    with pytest.raises(TimeoutError):
        sent += ids_in((await asyncio.wait_for(anext(body), 0.5)).decode())
    assert sent == [change["id"] for change in logged], "each once"
    assert reads == 2
    await body.aclose()


# --- Written at once by the fan-out (realtime.streams.sse._WriteNow), as under Daphne ---


def open_written_stream(
    user: Any, write: Callable[[bytes], None], pending: Callable[[], int] = lambda: 0
) -> tuple[AsyncGenerator[bytes, None], Listener]:
    """A stream given a writer to its connection, as stream_response gives it under Daphne."""
    listener = Listener()
    listener.user_id = user.pk
    listener.channels = {SSE_CHANNEL}
    return sse.stream(user, SSE_CHANNEL, None, listener, pending, None, write), listener


def change(event_id: int) -> ChangeMessage:
    return change_message({"id": event_id, "table": "t", "op": "INSERT", "data": {"n": event_id}})


def encoded(event_id: int) -> bytes:
    data = change(event_id)["frame"]
    text: str = sse_encode_event("message", data, event_id=f"{SSE_CHANNEL}:{event_id}")
    return text.encode()


async def closed(body: AsyncGenerator[bytes, None], chunk: asyncio.Future[str]) -> None:
    chunk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await chunk
    await body.aclose()


async def test_a_waiting_stream_is_written_to_at_once_without_being_woken(user) -> None:
    written: list[bytes] = []
    body, listener = open_written_stream(user, written.append)
    await next_chunk(body)
    chunk = await waiting(body)
    wake_sse_streams([change(7), change(8)])
    assert written == [encoded(7) + encoded(8)]
    assert not listener.aevent.is_set()
    wake_sse_streams([change(8), change(9)])  # 8 again (a heal, a late delivery): once
    assert written == [encoded(7) + encoded(8), encoded(9)]
    await asyncio.sleep(0.1)
    assert not chunk.done(), "the stream itself had nothing to send"
    await closed(body, chunk)
    assert listener.write_now is None


async def test_a_lagging_client_gets_what_follows_through_its_stream_in_order(
    user, settings
) -> None:
    """While its client leaves more than REALTIME_CLIENT_MAX_BUFFER unread, the changes wait
    in the stream (which waits for the client, or drops it), and what comes after them too."""
    unread = [0]
    written: list[bytes] = []
    body, _ = open_written_stream(user, written.append, lambda: unread[0])
    await next_chunk(body)
    chunk = await waiting(body)
    unread[0] = settings.REALTIME_CLIENT_MAX_BUFFER + 1
    wake_sse_streams([change(1)])
    await asyncio.sleep(0.1)  # the stream took it, and waits for its client
    unread[0] = 0
    wake_sse_streams([change(2)])  # the stream is busy: queued behind 1
    assert written == []
    got = ids_in(await chunk)
    while len(got) < 2:
        got += ids_in(await next_chunk(body))
    assert got == [1, 2]
    chunk = await waiting(body)
    wake_sse_streams([change(3)])
    assert written == [encoded(3)]
    await closed(body, chunk)


async def test_a_stream_written_to_is_not_quiet_and_sends_no_heartbeat(user, settings) -> None:
    settings.REALTIME_HEARTBEAT_SECONDS = 1.0
    written: list[bytes] = []
    body, _ = open_written_stream(user, written.append)
    await next_chunk(body)
    heartbeat = await waiting(body)
    for n in range(1, 16):  # 3 s of changes, one every 0.2 s
        wake_sse_streams([change(n)])
        await asyncio.sleep(0.2)
    assert not heartbeat.done()
    assert await heartbeat == LIVE  # once it is quiet
    assert len(written) == 15
    await body.aclose()


async def test_a_stream_whose_connection_fails_a_write_ends(user) -> None:
    def broken(chunk: bytes) -> None:
        raise RuntimeError("the connection broke")

    body, _ = open_written_stream(user, broken)
    await next_chunk(body)
    chunk = await waiting(body)
    wake_sse_streams([change(1)])
    with pytest.raises(StopAsyncIteration):
        await chunk
    assert SSE_CHANNEL not in get_listener_manager().listeners_by_channel
