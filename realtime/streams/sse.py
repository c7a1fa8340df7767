"""Every use of django-eventstream's internals, in one module beside its contract tests.

Its listener manager, `get_events`, `EventRequest` and per-stream `Listener` are not a
documented API (pinned in requirements.txt; tests/test_eventstream_contract.py and
tests/test_sse.py fail if they change). Here:

- the SSE streams this process serves itself (Pushpin's go through GRIP): django-
  eventstream's protocol, state and storage driven by a loop of our own instead of its
  `stream()`, which waited for each wake-up through a new task and `asyncio.wait`,
  encoded every event for every stream, and wrapped back-pressure, the gauge and the
  request thread in three more generators (docs/performance.md has what that cost);
- the producing half: queueing a batch of events on the local streams of a stream name,
  waking each stream once.

Stream names (django-eventstream calls them channels): "violations" for the JSON of
/events/violations/, "table/<kind>/<camera>" and "admin/<kind>/<camera>" for the row
fragments (realtime.console.rows).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote

import jwt
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection as db_connection
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django_eventstream.event import Event as _StreamEvent
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

from realtime import metrics
from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR
from realtime.access.open_streams import Holder, TooManyStreams, open_streams
from realtime.pipeline.positions import BadPosition, Position, parse_stream_position
from realtime.streams import liveness, server_internals

if TYPE_CHECKING:
    from realtime.streams.storage import Read

logger = logging.getLogger(__name__)

# django-eventstream's event: what its streams queue and its storage returns.
StreamEvent: TypeAlias = _StreamEvent

# As django-eventstream: a comment to get past proxies' buffering, then stream-open.
OPENING = (":" + " " * 2048 + "\n\nevent: stream-open\ndata:\n\n").encode()

# The stream of /events/violations/ (the JSON of each change).
JSON_STREAM = "violations"
# Events waiting for one stream (django-eventstream's own limit is 10). Past it the stream
# re-reads from the log once it runs again: nothing is lost, but a burst of a few hundred
# rows should not send every stream to the database.
STREAM_PENDING_MAX = 1000

# Events per read of the log (django-eventstream's default is 100): a stream that fell
# behind inside a big statement unpacks its log row once per read (sql/005).
LOG_READ_LIMIT = 1000
# Runs of consecutive ids a stream remembers having sent (SentIds): a few KB.
SENT_RUNS = 1000


class SentIds:
    """The event ids one stream sent, as runs of consecutive ids (one run for a stream that
    gets every change), the lowest forgotten past SENT_RUNS runs.

    A stream sends an event at most once (docs/guarantees.md, promise 2), but two sources
    can bring the same one: a read of the log and the bridge. A read can run ahead of the
    bus (the listener behind, or none during a failover: the bridge brings those later),
    and a read from a position repeats what committed above its horizon
    (realtime.pipeline.positions), which includes changes the stream sent live when a transaction
    still ran as it took the position (a 2,500-row statement, say) or a read that follows
    another (more to read, or more queued meanwhile).
    """

    def __init__(self) -> None:
        self._low: list[int] = []  # each run's first id, ascending
        self._high: list[int] = []  # each run's last id

    def __contains__(self, event_id: int) -> bool:
        if not self._high or event_id > self._high[-1]:
            return False  # the usual case: a new change
        at = bisect.bisect_right(self._low, event_id) - 1
        return at >= 0 and event_id <= self._high[at]

    def add(self, event_id: int) -> None:
        if self._high and self._high[-1] + 1 == event_id:
            self._high[-1] = event_id  # the usual case
            return
        at = bisect.bisect_right(self._low, event_id)
        if at and event_id <= self._high[at - 1] + 1:
            self._high[at - 1] = max(self._high[at - 1], event_id)
        elif at < len(self._low) and event_id == self._low[at] - 1:
            self._low[at] = event_id
        else:
            self._low.insert(at, event_id)
            self._high.insert(at, event_id)
            if len(self._low) > SENT_RUNS:
                del self._low[0], self._high[0]
            return
        # Two runs that now touch become one.
        at = max(at - 1, 0)
        if at + 1 < len(self._low) and self._high[at] + 1 >= self._low[at + 1]:
            self._high[at] = max(self._high[at], self._high[at + 1])
            del self._low[at + 1], self._high[at + 1]

    def fresh(self, items: list[StreamEvent]) -> list[StreamEvent]:
        """The items not sent yet, now counted as sent."""
        out = []
        for item in items:
            event_id = event_number(item)
            if event_id is None:
                out.append(item)
            elif event_id not in self:
                self.add(event_id)
                out.append(item)
        return out


def event_number(item: StreamEvent) -> int | None:
    """The log id of a stream's event (its id is its position, realtime.pipeline.positions); read
    once per event, whatever the number of streams it is queued on."""
    number: int | str | None = getattr(item, "event_number", "unread")
    if number == "unread":
        try:
            number = Position.parse(str(item.id)).after if item.id is not None else None
        except BadPosition:
            number = None
        item.event_number = number
    assert not isinstance(number, str)
    return number


# Pushpin's next links carry `es-meta` (claims this server signed, see
# django_eventstream.eventresponse), and `recover` to resume from Pushpin's Grip-Last.
PUSHPIN_PARAMETERS_ONLY = "es-meta and recover are parameters of Pushpin's requests only"
UNREADABLE_ES_META = "es-meta is not a link this server signed, or it has expired"
# django-eventstream checks the expiry again a moment later, and fails on an expired one.
ES_META_LEEWAY = -5  # seconds: refuse what expires within them too


def pushpin_parameters_problem(request: HttpRequest) -> str | None:
    """Why django-eventstream could not read the request's `es-meta` or `recover`, or None.

    Its EventRequest reads them before anything else and raises on what it cannot read
    (a JWT that does not verify, `recover` without django-grip's middleware): a 500.
    """
    grip = getattr(request, "grip", None)
    es_meta = request.GET.get("es-meta")
    if grip is None or not grip.proxied:
        # From a client they mean nothing, and es-meta's claims would name the channels.
        if es_meta or request.GET.get("recover") == "true":
            return PUSHPIN_PARAMETERS_ONLY
        return None
    if es_meta:
        try:
            jwt.decode(
                es_meta,
                settings.SECRET_KEY.encode(),
                algorithms=["HS256"],
                options={"require": ["exp"]},
                leeway=ES_META_LEEWAY,
            )
        except jwt.InvalidTokenError:
            return UNREADABLE_ES_META
    return None


View: TypeAlias = Callable[..., HttpResponseBase]


def pushpin_parameters_checked(view: View) -> View:
    """A stream's view that answers 400 to Pushpin's parameters it could not read."""

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        problem = pushpin_parameters_problem(request)
        if problem is not None:
            return JsonResponse({"error": problem}, status=400)
        return view(request, *args, **kwargs)

    return checked


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
    pending = getattr(request, "scope", {}).get(server_internals.SCOPE_KEY)
    response = StreamingHttpResponse(
        stream(event_request.user, channel, position, listener, pending, holder),
        content_type="text/event-stream",
    )
    add_default_headers(response, request=request)
    return response


def grip_response(
    request: HttpRequest, channel: str, position: Position | None = None
) -> HttpResponseBase:
    """django-eventstream's own view, for the requests Pushpin makes (GRIP). It reads the
    storage with an int id: the position's horizon travels beside it
    (eventlog_storage.resume_horizons), here for the position the client resumes from, the
    `lastEventId` of a continuation, or the ids Pushpin recovers from."""
    from realtime.streams.storage import resume_horizons

    if position is None:
        raw = next((v for v in reversed(request.GET.getlist("lastEventId")) if v), None)
        if raw:
            try:
                position = parse_stream_position(raw)[1]
            except BadPosition:
                position = None  # django-eventstream answers it
    horizons: dict[str, str | None] = {}
    if position is not None:
        # The header wins over ?lastEventId= in django-eventstream's request.
        request.META["HTTP_LAST_EVENT_ID"] = f"{quote(channel)}:{position.after}"
        horizons[channel] = position.horizon
    last: dict[str, Any] = getattr(getattr(request, "grip", None), "last", None) or {}
    for name, value in list(last.items()):
        try:
            recovered = Position.parse(str(value))
        except BadPosition:
            continue
        last[name] = str(recovered.after)
        if name == f"events-{quote(channel)}":
            horizons[channel] = recovered.horizon
    reset = resume_horizons.set(horizons)
    try:
        return events(request, channels=[channel])  # type: ignore[no-any-return]
    finally:
        resume_horizons.reset(reset)


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
) -> AsyncIterator[bytes]:
    manager = get_listener_manager()
    listener.assign_loop()
    handle = None
    if holder is not None:
        try:
            scope = scopes.split_channel(channel)[1]
            handle = open_streams.open(holder, lambda moved: _ended(listener, moved), "sse", scope)
        except TooManyStreams:
            return
    manager.add_listener(listener)
    gauge = metrics.CONNECTED_CLIENTS.labels("sse")
    gauge.inc()
    try:
        body = [OPENING, heartbeat()]
        sent = SentIds()
        while True:
            # From the log: at the start, and again whenever the stream fell behind.
            try:
                read = await _read_from_log(user, channel, position, listener, sent)
            except EventPermissionError as exc:
                yield _error("forbidden", str(exc), {"channels": exc.channels})
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
            async for chunk in _live(listener, pending, live):
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


def _read_log(user: Any, channel: str, position: Position | None) -> tuple[Read, bool]:
    """The storage's read for a stream (in a thread); whether it is a reset."""
    # Here, not at the top: the storage's module draws events with the bridge's help.
    from realtime.streams.storage import EventLogStorage, Read

    try:
        if not get_channelmanager().can_read_channel(user, channel):
            raise EventPermissionError(f"Permission denied to channels: {channel}", [channel])
        storage = EventLogStorage()
        if position is None:
            return Read([], Position.parse(storage.get_current_id(channel)), False), False
        try:
            return storage.read(channel, position, LOG_READ_LIMIT), False
        except EventDoesNotExist as exc:
            return Read([], Position.parse(exc.current_id), False), True
    finally:
        # A stream lives for days: its thread must not keep a database connection.
        db_connection.close()


read_log = sync_to_async(_read_log)


async def _read_from_log(
    user: Any, channel: str, position: Position | None, listener: Listener, sent: SentIds
) -> _Read:
    try:
        read, reset = await read_log(user, channel, position)
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


async def _live(
    listener: Listener,
    pending: server_internals.PendingBytes | None,
    outcome: _Live,
) -> AsyncIterator[bytes]:
    """Chunks of what the bridge queues; returns when the stream overflowed (the rest is
    in the log) or is over (outcome.ended)."""
    manager = get_listener_manager()
    last_ids = outcome.last_ids
    told = liveness.watch.generation  # the pipeline's state the client has
    shelves_told = _shelves.generation  # the shelves the client was told of
    # `shelves` is for the row streams, not the JSON ones (whatever their scope).
    rows = all(scopes.split_channel(c)[0] != JSON_STREAM for c in listener.channels)
    while True:
        try:
            async with asyncio.timeout(settings.REALTIME_HEARTBEAT_SECONDS):
                await listener.aevent.wait()
        except TimeoutError:
            if not await drained(pending):
                outcome.ended = True
                return
            told = liveness.watch.generation
            yield heartbeat()
            continue
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


# Tells a page to read the shelves again (GET /shelves/, realtime.console.shelves). No `id:`.
SHELVES_EVENT = b"event: shelves\ndata: changed\n\n"


@dataclass
class _Generation:
    generation: int = 0


_shelves = _Generation()


def shelves_changed() -> None:
    """Every rows stream of this process sends a `shelves` event now."""
    _shelves.generation += 1
    wake_every_stream()


def wake_every_stream() -> None:
    """Every stream of this process sends a heartbeat now (the pipeline's state changed)."""
    manager = get_listener_manager()
    with manager.lock:
        listeners = {item for items in manager.listeners_by_channel.values() for item in items}
    for listener in listeners:
        listener.wake_threadsafe()


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


def queue_for_streams(stream_name: str, items: list[StreamEvent]) -> None:
    """Queue events on every local stream of a name, waking each stream once.

    What django-eventstream's `ListenerManager.add_to_queues` does for one event (its own
    Redis listener calls it), for several: a stream then writes them all in one chunk.
    """
    manager = get_listener_manager()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with manager.lock:
        for listener in manager.listeners_by_channel.get(stream_name, ()):
            queued = listener.channel_items.setdefault(stream_name, [])
            room = STREAM_PENDING_MAX - len(queued)
            if room < len(items):
                # The stream reads the rest from the log after what it has.
                listener.overflow = True
            queued.extend(items[: max(0, room)])
            if listener.loop is loop:
                listener.aevent.set()  # the stream's own loop, this thread: no self-pipe write
            else:
                listener.wake_threadsafe()


def listened() -> Collection[str]:
    """The stream names some stream of this process listens to now."""
    names: Collection[str] = get_listener_manager().listeners_by_channel.keys()
    return names


def event(stream_name: str, event_type: str, data: str, event_id: str) -> StreamEvent:
    """An event of a stream; its id is a position (realtime.pipeline.positions)."""
    made: StreamEvent = _StreamEvent(stream_name, event_type, data, id=event_id)
    return made
