"""The SSE streams this process serves itself: django-eventstream's protocol, state and
storage driven by a loop of our own (Pushpin's streams go through realtime.streams.pushpin).

Its `EventRequest`, listener manager and per-stream `Listener` are not a documented API
(pinned in requirements.txt; tests/test_eventstream_contract.py and tests/test_sse.py fail
if they change): every use of them is here and in realtime.streams.sse_fanout, the
producing half. The loop replaces django-eventstream's `stream()`, which waited for each
wake-up through a new task and `asyncio.wait`, encoded every event for every stream, and
wrapped back-pressure, the gauge and the request thread in three more generators
(docs/performance.md has what that cost).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django_eventstream.eventrequest import EventRequest
from django_eventstream.eventstream import EventPermissionError
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import (
    add_default_headers,
    get_channelmanager,
    make_id,
    sse_encode_error,
    sse_encode_event,
)
from django_eventstream.views import Listener, events, get_listener_manager

from realtime import metrics, pool
from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR
from realtime.access.open_streams import Holder, TooManyStreams, Watch, open_streams
from realtime.pipeline import event_log
from realtime.pipeline.positions import Position
from realtime.streams import liveness, names, server_internals
from realtime.streams.sent_ids import SentIds
from realtime.streams.sse_fanout import SHELVES_EVENT, StreamEvent, _shelves

if TYPE_CHECKING:
    from realtime.streams.storage import Read


logger = logging.getLogger(__name__)


# As django-eventstream: a comment to get past proxies' buffering, then stream-open.
OPENING = (":" + " " * 2048 + "\n\nevent: stream-open\ndata:\n\n").encode()


def reconnect_time() -> bytes:
    """A stream's `retry:`: when its EventSource comes back if the stream is cut, a random
    time from 1 s to REALTIME_SSE_RECONNECT_WITHIN. Browsers wait 3 s by default, all of
    them: a restart under thousands of screens brought them back as one burst, more than
    Pushpin's queue to Django takes at once (it answers 502; docs/performance.md)."""
    within = round(settings.REALTIME_SSE_RECONNECT_WITHIN * 1000)
    return f"retry: {random.randint(1000, within)}\n\n".encode()


def retry_after_error() -> bytes:
    """Ends a stream the server could not serve (the database went away): its EventSource
    comes back after pool.RETRY_AFTER_SECONDS, spread over REALTIME_SSE_RECONNECT_WITHIN
    more (every stream of the process ends at once, and all came back at once)."""
    delay = pool.RETRY_AFTER_SECONDS
    within = round((delay + settings.REALTIME_SSE_RECONNECT_WITHIN) * 1000)
    return f"retry: {random.randint(delay * 1000, within)}\n\n".encode()


# Events per read of the log (django-eventstream's default is 100): a stream that fell
# behind inside a big statement unpacks its log row once per read (sql/005).
LOG_READ_LIMIT = 1000


def stream_response(
    request: HttpRequest, channel: str, position: Position | None
) -> HttpResponseBase:
    """A stream of `channel` from `position` (realtime.pipeline.positions), or from now."""
    try:
        event_request = EventRequest(request, view_kwargs={"channels": [channel]})
    except (EventRequest.Error, EventPermissionError):
        # django-eventstream's own error response for it.
        return events(request, channels=[channel])  # type: ignore[no-any-return]
    assert request.user.pk is not None  # the view let only an authenticated user in
    holder = Holder(int(request.user.pk), getattr(request, TOKEN_ID_ATTR, None))
    if open_streams.full(holder):
        metrics.STREAMS_REFUSED.labels("sse", "per_user_cap").inc()
        refused = JsonResponse(
            {"error": "too many streams open for this user; close some first"}, status=429
        )
        refused["Retry-After"] = "30"
        return refused
    listener = Listener()
    listener.user_id = event_request.user.pk if event_request.user else "anonymous"
    listener.channels = event_request.channels
    scope = getattr(request, "scope", {})
    pending = scope.get(server_internals.SCOPE_KEY)
    server_send = scope.get(server_internals.SERVER_SEND_KEY)
    server_internals.send_at_once(server_send)
    write = server_internals.direct_body_writer(server_send)
    response = StreamingHttpResponse(
        stream(event_request.user, channel, position, listener, pending, holder, write),
        content_type="text/event-stream",
    )
    add_default_headers(response, request=request)
    return response


def _ended(listener: Listener, scope_changed: bool) -> None:
    """The stream's credentials ended: it sends a stream-error and closes. Or its user's
    scope changed: it just ends, and the EventSource reconnects with Last-Event-ID, to the
    stream of its new scope (realtime.access.open_streams)."""
    with get_listener_manager().lock:
        if scope_changed:
            listener.scope_changed = True
        else:
            listener.error = {
                "condition": "forbidden",
                "text": "The token or user is no longer valid.",
            }
    listener.aevent.set()


async def stream(
    user: Any,
    channel: str,
    position: Position | None,
    listener: Listener,
    pending: server_internals.PendingBytes | None,
    holder: Holder | None = None,
    write: server_internals.WriteBody | None = None,
) -> AsyncGenerator[bytes, None]:
    """The stream's body. With `write` (the server's own, realtime.streams.server_internals)
    what the bridge brings while the stream waits goes out through it (_WriteNow)."""
    manager = get_listener_manager()
    listener.assign_loop()
    handle = None
    if holder is not None:
        try:
            base, scope = names.split(channel)
            handle = open_streams.open(
                holder,
                lambda moved: _ended(listener, moved),
                "sse",
                scope,
                watch(holder, base, scope),
            )
        except TooManyStreams:
            return
    manager.add_listener(listener)
    gauge = metrics.CONNECTED_CLIENTS.labels("sse")
    gauge.inc()
    try:
        body = [reconnect_time(), OPENING, heartbeat()]
        sent = SentIds()
        while True:
            # From the log: at the start, and again whenever the stream fell behind.
            try:
                read = await _read_from_log(user, channel, position, listener, sent)
            except EventPermissionError as exc:
                yield _error("forbidden", str(exc), {"channels": exc.channels})
                return
            except DatabaseError:
                # Its headers are sent: no 503 now. It ends, and its EventSource comes back
                # (with Last-Event-ID, after its retry) to a process that can read the log.
                logger.warning(
                    "could not read the log for a stream: it ends, its client reconnects",
                    exc_info=True,
                )
                yield retry_after_error()
                return
            body.extend(read.chunks)
            position = read.position
            if body:
                if not await drained(pending):
                    return
                yield b"".join(body)
                body = []
            if read.again:
                continue
            # Caught up: what the bridge queues from now on, until the stream overflows.
            live = _Live(last_ids={channel: str(position)}, sent=sent)
            async for chunk in _live(listener, pending, live, write):
                yield chunk
            if live.ended:
                return
            if live.changed:
                # Read on from the last change sent (its id is its position), with the
                # horizon of the read that caught up if that is later: every change below
                # it was visible to that read, which sent all it saw.
                position = tighter(Position.parse(live.last_ids[channel]), position)
    finally:
        gauge.dec()
        if handle is not None:
            open_streams.close(handle)
        listener.aevent.set()
        manager.remove_listener(listener)


def watch(holder: Holder, base: str, scope: scopes.Scope) -> Watch | None:
    """What a stream watches, if it is a person's live table (realtime.alerts.presence):
    opened with a session (a token's stream is a program's), of the cameras it shows."""
    if holder.token_id is not None or not names.is_live_table(base):
        return None
    camera = names.rows_camera(base)
    if camera is None:
        return Watch(scope)
    return Watch(frozenset({camera}) if scopes.covers(scope, camera) else scopes.NOTHING)


def tighter(sent: Position, caught_up: Position) -> Position:
    """The position of a stream that sent `sent` live after a read of the whole log that
    ended at `caught_up` (realtime.pipeline.positions)."""
    if sent.horizon is None or caught_up.horizon is None:
        return sent
    return Position(sent.after, str(max(int(sent.horizon), int(caught_up.horizon))))


@dataclass
class _Read:
    chunks: list[bytes]
    position: Position
    again: bool  # read the log again at once


def _read_log(channel: str, position: Position | None) -> tuple[Read, bool]:
    """The storage's read for a stream (in a thread); whether it is a reset."""
    # Here, not at the top: the storage's module draws events with the bridge's help.
    from realtime.streams.storage import EventLogStorage, Read

    try:
        storage = EventLogStorage()
        if position is None:
            return Read([], event_log.current_position(), False), False
        try:
            return storage.read(channel, position, LOG_READ_LIMIT), False
        except EventDoesNotExist as exc:
            return Read([], Position.parse(exc.current_id), False), True
    finally:
        # A stream lives for days: no thread of it may keep a database connection.
        pool.release()


read_log = sync_to_async(_read_log, thread_sensitive=False)


class SharedReads:
    """This process's streams' reads of the log: one per stream name and position while it
    has not begun, shared by every stream that asks for it meanwhile; at most half the
    database pool's connections at once, the other reads waiting on the event loop.

    A crowd of connects asks one read of where "now" is (its position does not depend on
    the stream), and one per distinct resume point, instead of a read each that waits for
    a connection in a thread of its own. A stream joins only a read that has not begun, so
    the read is made after the stream's listener was registered, as its own would be.
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, Position] | None, asyncio.Future[tuple[Read, bool]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(max(1, pool.size() // 2))

    async def read(self, channel: str, position: Position | None) -> tuple[Read, bool]:
        key = None if position is None else (channel, position)
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            # Retrieved, so that a read whose streams all went away logs nothing.
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            task = asyncio.ensure_future(self._run(key, channel, position, future))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await asyncio.shield(future)

    async def _run(
        self,
        key: tuple[str, Position] | None,
        channel: str,
        position: Position | None,
        future: asyncio.Future[tuple[Read, bool]],
    ) -> None:
        try:
            async with self._gate:
                if self._waiting.get(key) is future:
                    del self._waiting[key]  # from now on, a stream that asks waits for the next
                result = await read_log(channel, position)
        except asyncio.CancelledError:
            if self._waiting.get(key) is future:
                del self._waiting[key]
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


_shared_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedReads] = (
    weakref.WeakKeyDictionary()
)


def shared_reads() -> SharedReads:
    """The running event loop's (one per server process; a test may run several loops)."""
    loop = asyncio.get_running_loop()
    reads = _shared_reads.get(loop)
    if reads is None:
        reads = _shared_reads[loop] = SharedReads()
    return reads


async def may_read(user: Any, channel: str) -> bool:
    """Whether `user` may read `channel`: from what the process knows when it can (the
    user's scope is usually a second old, read for the request), else from the database."""
    manager = get_channelmanager()
    known: bool | None = manager.can_read_channel_now(user, channel)
    if known is None:
        known = await database_sync_to_async(manager.can_read_channel, thread_sensitive=False)(
            user, channel
        )
    return bool(known)


async def _read_from_log(
    user: Any, channel: str, position: Position | None, listener: Listener, sent: SentIds
) -> _Read:
    try:
        if not await may_read(user, channel):
            raise EventPermissionError(f"Permission denied to channels: {channel}", [channel])
        read, reset = await shared_reads().read(channel, position)
    finally:
        server_internals.release_request_thread()
    chunks = []
    if reset:
        # The log cannot say what the client lacks: it should reload what it shows.
        chunks.append(
            sse_encode_event(
                "stream-reset",
                {"channels": [channel]},
                event_id=make_id({channel: str(read.position)}),
                json_encode=True,
            ).encode()
        )
    for item in sent.fresh(read.events):
        chunks.append(
            sse_encode_event(item.type, item.data, event_id=make_id({channel: item.id})).encode()
        )
    if read.more:
        return _Read(chunks, read.position, again=True)
    with get_listener_manager().lock:
        behind = bool(listener.channel_items)
        if behind:
            # Queued while the log was read: read the log again instead, from where the read
            # ended (django-eventstream's stream() reads from the start again, and sends
            # what it had sent twice).
            listener.aevent.clear()
            listener.channel_items = {}
    return _Read(chunks, read.position, again=behind)


@dataclass
class _Live:
    # The stream's last id, by stream name (one name per stream).
    last_ids: dict[str, Any]
    ended: bool = False  # the stream is over (an error, a client that stopped reading)
    changed: bool = False  # a change was sent
    sent: SentIds = field(default_factory=SentIds)  # what the stream sent, live or not


class _WriteNow:
    """Writes what the bridge brings a stream to its connection at once, from the fan-out
    (realtime.streams.sse_fanout.queue_for_streams), while the stream waits for the bridge
    with nothing queued and its client keeps up: its task is not woken, and the bytes do not
    go through Django's response generators, per stream (docs/performance.md).

    Anything else is queued as before and the stream writes it in order: all it would have
    written before these events is written when it waits (and its wake-up is not set). Its
    heartbeat, a `shelves` event or an error come after them, as in one chunk of the stream.
    """

    def __init__(
        self,
        listener: Listener,
        write: server_internals.WriteBody,
        pending: server_internals.PendingBytes | None,
        outcome: _Live,
    ) -> None:
        self.listener = listener
        self.write = write
        self.pending = pending
        self.limit = settings.REALTIME_CLIENT_MAX_BUFFER
        self.outcome = outcome
        self.loop = asyncio.get_running_loop()
        self.waiting = False  # the stream waits for its wake-up, with nothing to write
        self.written_at = -math.inf  # the loop's time of the last write
        self.failed = False

    def __call__(self, channel: str, items: list[StreamEvent]) -> bool:
        listener = self.listener
        if (
            not self.waiting
            or listener.aevent.is_set()
            or listener.channel_items
            or listener.overflow
            or listener.error
        ):
            return False
        if self.pending is not None and self.pending() > self.limit:
            return False  # the stream waits for the client (drained) or drops it
        outcome = self.outcome
        body = [_encoded(item, channel, outcome.last_ids) for item in outcome.sent.fresh(items)]
        if not body:
            return True
        outcome.changed = True
        try:
            self.write(b"".join(body))
        except Exception:
            # The stream ends; its client resumes from the last event it got.
            logger.exception("could not write to an SSE stream, ending it")
            self.failed = True
            listener.aevent.set()
            return True
        self.written_at = self.loop.time()
        return True


async def _live(
    listener: Listener,
    pending: server_internals.PendingBytes | None,
    outcome: _Live,
    write: server_internals.WriteBody | None = None,
) -> AsyncIterator[bytes]:
    """Chunks of what the bridge queues; returns when the stream overflowed (the rest is
    in the log) or is over (outcome.ended). With `write`, what the bridge brings while the
    stream waits goes out through it instead (_WriteNow)."""
    manager = get_listener_manager()
    loop = asyncio.get_running_loop()
    last_ids = outcome.last_ids
    told = liveness.watch.generation  # the pipeline's state the client has
    shelves_told = _shelves.generation  # the shelves the client was told of
    # `shelves` is for the row streams, not the JSON ones (whatever their scope).
    rows = all(names.split(c)[0] != names.JSON_STREAM for c in listener.channels)
    now = _WriteNow(listener, write, pending, outcome) if write is not None else None
    listener.write_now = now
    quiet_since = loop.time()  # the last time the stream wrote or woke
    try:
        while True:
            if now is not None:
                now.waiting = True
            try:
                deadline = quiet_since + settings.REALTIME_HEARTBEAT_SECONDS
                async with asyncio.timeout_at(deadline):
                    await listener.aevent.wait()
                woken = True
            except TimeoutError:
                woken = False
            finally:
                if now is not None:
                    now.waiting = False
            if not woken:
                if now is not None and now.written_at > quiet_since:
                    quiet_since = now.written_at  # not quiet: changes went out meanwhile
                    continue
                if not await drained(pending):
                    outcome.ended = True
                    return
                told = liveness.watch.generation
                yield heartbeat()
                quiet_since = loop.time()
                continue
            quiet_since = loop.time()
            if now is not None and now.failed:
                outcome.ended = True
                return
            with manager.lock:
                channel_items = listener.channel_items
                overflow = listener.overflow
                error = listener.error
                listener.aevent.clear()
                listener.channel_items = {}
                listener.overflow = False
            if getattr(listener, "scope_changed", False):
                outcome.ended = True  # the client comes back, to its new scope's stream
                return
            body = [
                _encoded(item, channel, last_ids)
                for channel, items in channel_items.items()
                for item in outcome.sent.fresh(items)
            ]
            outcome.changed = outcome.changed or bool(body)
            if told != liveness.watch.generation:
                told = liveness.watch.generation
                body.append(heartbeat())
            if shelves_told != _shelves.generation:
                shelves_told = _shelves.generation
                if rows:
                    body.append(SHELVES_EVENT)
            if error:
                body.append(_error(error["condition"], error["text"], error.get("extra")))
            if body:
                if not await drained(pending):
                    outcome.ended = True
                    return
                yield b"".join(body)
            if error:
                outcome.ended = True
                return
            if overflow:
                return
    finally:
        listener.write_now = None


def _encoded(item: StreamEvent, channel: str, last_ids: dict[str, Any]) -> bytes:
    """One event as SSE, updating `last_ids` as django-eventstream does."""
    if channel in last_ids:
        if item.id is not None:
            last_ids[channel] = item.id
        else:
            del last_ids[channel]
    if last_ids.keys() == {channel}:
        # The usual case, one channel per stream: the same text for every stream of it.
        cached: tuple[str, bytes] | None = getattr(item, "sse_bytes", None)
        if cached is None or cached[0] != channel:
            text = sse_encode_event(item.type, item.data, event_id=make_id(last_ids))
            cached = item.sse_bytes = (channel, text.encode())
        return cached[1]
    encoded: bytes = sse_encode_event(
        item.type, item.data, event_id=make_id(last_ids) or None
    ).encode()
    return encoded


def heartbeat() -> bytes:
    """The `heartbeat` event: sent when a stream has been quiet for
    REALTIME_HEARTBEAT_SECONDS, and at once when the pipeline's state changes. No `id:`,
    so a client's Last-Event-ID stays the last change's."""
    state = liveness.watch.state
    cached = _heartbeats.get(state)
    if cached is None:
        cached = _heartbeats[state] = f"event: heartbeat\ndata: {state.as_json()}\n\n".encode()
    return cached


_heartbeats: dict[liveness.PipelineState, bytes] = {}


def _error(condition: str, text: str, extra: dict[str, Any] | None) -> bytes:
    return sse_encode_error(condition, text, extra).encode()  # type: ignore[no-any-return]


async def drained(pending: server_internals.PendingBytes | None) -> bool:
    """Waits for a client that leaves more than REALTIME_CLIENT_MAX_BUFFER unread; False
    (end the stream) if it takes nothing for REALTIME_CLIENT_STALL_TIMEOUT seconds.

    Its EventSource reconnects with Last-Event-ID and gets the rest from the log.
    """
    limit = settings.REALTIME_CLIENT_MAX_BUFFER
    if await server_internals.drained(pending, limit, settings.REALTIME_CLIENT_STALL_TIMEOUT):
        return True
    logger.warning(
        "dropping an SSE client that stopped reading",
        extra={"buffered_bytes": pending() if pending else 0},
    )
    return False
