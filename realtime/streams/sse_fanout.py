"""What this process's SSE streams are sent: a batch of events queued on the local
streams of a name, each stream woken once (django-eventstream's listener manager, an
internal like those realtime.streams.sse uses)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from django_eventstream.event import Event as _StreamEvent
from django_eventstream.views import get_listener_manager

from realtime.pipeline.bus import ChangeMessage, message_position
from realtime.streams import names
from realtime.streams.formats import Targets, in_scope, json_text, row_fragments
from realtime.violations import kinds

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    pass


# django-eventstream's event: what its streams queue and its storage returns.
StreamEvent: TypeAlias = _StreamEvent


# A stream's writer while it waits for the bridge (realtime.streams.sse): writes the events
# of a stream name to its connection now, or says False and they are queued.
WriteNow: TypeAlias = Callable[[str, list[StreamEvent]], bool]


# Events waiting for one stream (django-eventstream's own limit is 10). Past it the stream
# re-reads from the log once it runs again: nothing is lost, but a burst of a few hundred
# rows should not send every stream to the database.
STREAM_PENDING_MAX = 1000


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


def queue_for_streams(stream_name: str, items: list[StreamEvent]) -> None:
    """Queue events on every local stream of a name, waking each stream once; or write
    them to the stream's connection now, where the stream lets its writer do it.

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
            if listener.loop is loop:
                write_now: WriteNow | None = getattr(listener, "write_now", None)
                if write_now is not None and write_now(stream_name, items):
                    continue
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


def wake_sse_streams(messages: list[ChangeMessage]) -> None:
    # One stream name per scope (realtime.access.scopes): each change filtered once per scope,
    # and its event's text made once per form (realtime.streams.membership), whatever the
    # number of scopes.
    channels = [c for c in listened() if names.split(c)[0] == names.JSON_STREAM]
    if not channels:
        return
    texts: dict[int, tuple[str, str]] = {}
    for channel in channels:
        events = []
        for seen in in_scope(messages, names.split(channel)[1]):
            text = texts.get(id(seen))
            if text is None:
                text = texts[id(seen)] = json_text(seen)
            events.append(event(channel, text[0], text[1], message_position(seen)))
        if events:
            queue_for_streams(channel, events)


def json_event(message: ChangeMessage, channel: str = names.JSON_STREAM) -> StreamEvent:
    """A change's event on a /events/violations/ stream (json_text)."""
    event_type, data = json_text(message)
    return event(channel, event_type, data, message_position(message))


def wake_row_streams(messages: list[ChangeMessage]) -> None:
    # /events/violations/rows/: each change rendered once per layout, then queued on
    # every channel (one per filter) that keeps it; not rendered at all where no stream
    # of this process would take it.
    targets = Targets.of(listened())
    if not targets.by_base:
        return
    registry = kinds.cached()
    by_channel: dict[str, list[StreamEvent]] = {}
    for message in messages:
        try:
            fragments = row_fragments(message, registry, targets)
        except Exception:
            # One row that cannot be drawn keeps no other off the table.
            logger.exception("could not draw a row", extra={"event_id": message["id"]})
            continue
        for channel, html in fragments:
            by_channel.setdefault(channel, []).append(
                event(channel, "message", html, message_position(message))
            )
    for channel, events in by_channel.items():
        queue_for_streams(channel, events)
