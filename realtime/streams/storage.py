"""django-eventstream over our event log: its ids and its replay are the log's.

Nothing is appended through django-eventstream (the trigger writes the log); live events
reach the streams through the bridge, and this storage serves reconnects
(Last-Event-ID) and the catch-up django-eventstream does when a stream falls behind.

Channels: "violations" carries the JSON frames; "table/<kind>/<camera>" and
"admin/<kind>/<camera>" ("*" for any) carry rendered `<tr>` fragments (realtime.console.rows).
Each may end in a scope ("~1-3,7", realtime.access.scopes): only those cameras' changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from django.db import connection as db_connection
from django_eventstream.channelmanager import ChannelManagerBase
from django_eventstream.event import Event as StreamEvent
from django_eventstream.storage import EventDoesNotExist, StorageBase

from realtime import metrics, pool
from realtime.access import scopes
from realtime.console.rows import render_change
from realtime.pipeline import event_log
from realtime.pipeline.bus import ChangeMessage, change_message, message_position
from realtime.pipeline.positions import Position
from realtime.streams import names
from realtime.streams.membership import seen_through
from realtime.streams.shared_reads import SharedReads
from realtime.streams.sse_fanout import json_event
from realtime.violations import kinds

P = ParamSpec("P")
R = TypeVar("R")


def releases_connection(method: Callable[P, R]) -> Callable[P, R]:
    """Close this thread's database connection afterwards.

    django-eventstream calls the storage from the thread of a long-lived stream; Django
    would keep that thread's connection open until the stream ends: one PostgreSQL
    connection per SSE client. Reads here are rare (stream start, resume, overflow).
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        finally:
            db_connection.close()

    return wrapper


# The horizons of the positions a request resumes from, by stream name, for the reads
# django-eventstream makes itself (Pushpin's requests), which pass the storage an int.
resume_horizons: ContextVar[dict[str, str | None] | None] = ContextVar(
    "resume_horizons", default=None
)


_shared: SharedReads[list[StreamEvent]] = SharedReads()


@dataclass
class Read:
    """A stream's read of the log: its events (their ids are positions), where the stream
    is once it has sent them, and whether more may be read at once."""

    events: list[StreamEvent]
    position: Position
    more: bool


class EventLogStorage(StorageBase):
    def append_event(self, channel: str, event_type: str, data: Any) -> StreamEvent:
        raise NotImplementedError("Events are appended by the PostgreSQL trigger, not by Django.")

    @releases_connection
    def get_current_id(self, channel: str) -> str:
        return str(event_log.current_position())

    @releases_connection
    def get_events(self, channel: str, last_id: int, limit: int = 100) -> list[StreamEvent]:
        # Pushpin's requests only (django-eventstream's view): identical ones share a read.
        position = Position(last_id, (resume_horizons.get() or {}).get(channel))
        return _shared.read(
            (channel, position, limit), lambda: self.read(channel, position, limit).events
        )

    def read(self, channel: str, position: Position, limit: int) -> Read:
        """What a stream at `position` lacks: about `limit` of its changes, as it sees them
        (realtime.streams.membership). EventDoesNotExist (a stream-reset) when the log cannot say:
        the position is ahead of the log (another database's), or its successors are pruned."""
        if not event_log.servable(position):
            metrics.STREAM_RESETS.labels("sse").inc()
            raise EventDoesNotExist(
                f"No event {position.after} in the log", str(event_log.current_position())
            )
        base, scope = names.split(channel)
        registry = kinds.registry()
        keeps = names.keeper(base, scope)
        layout: names.Layout | None = None
        tables, camera = None, None
        if base != names.JSON_STREAM:
            layout, kind, camera = names.parse_rows(base)
            tables = [k.table for k in registry if kind in (None, k.slug)]
        events: list[StreamEvent] = []
        # `limit` of the stream's changes, or all there are: a window of the log holding
        # fewer of them (other sites' changes left out) is not the end of the log.
        while True:
            read = event_log.replay(position, limit, tables, camera)
            # Drawing the changes needs no connection: the others may have it meanwhile.
            pool.release()
            for change in read.changes:
                # As the stream sees it: a row that left its cameras is a DELETE.
                seen = seen_through(change_message(change), keeps)
                if seen is not None:
                    event = self._event(channel, layout, seen, registry)
                    if event is not None:
                        events.append(event)
            position = read.position
            if not read.more or len(events) >= limit:
                break
        metrics.EVENTS_REPLAYED.labels("sse_replay").inc(len(events))
        return Read(events, position, read.more)

    @staticmethod
    def _event(
        channel: str, layout: names.Layout | None, message: ChangeMessage, registry: kinds.Registry
    ) -> StreamEvent | None:
        if layout is None:
            return json_event(message, channel)
        html = render_change(
            message["frame"],
            message.get("state"),
            layout,
            registry,
            message.get("shelved", False),
        )
        if html is None:
            return None
        made: StreamEvent = StreamEvent(channel, "message", html, id=message_position(message))
        return made


class ViolationChannelManager(ChannelManagerBase):
    def get_channels_for_request(self, request: Any, view_kwargs: dict[str, Any]) -> set[str]:
        return set(view_kwargs.get("channels", [names.JSON_STREAM]))

    def can_read_channel(self, user: Any, channel: str) -> bool:
        if user is None or not user.is_active or not names.is_known(channel):
            return False
        # A stream of fewer cameras than the user's is theirs too; of more, not.
        return scopes.within(names.split(channel)[1], scopes.of_user(user))

    def can_read_channel_now(self, user: Any, channel: str) -> bool | None:
        """can_read_channel() from what the process knows (event-loop code); None when
        that needs the database."""
        if user is None or not user.is_active or not names.is_known(channel):
            return False
        allowed = scopes.recent(user)
        if isinstance(allowed, scopes.Unknown):
            return None
        return scopes.within(names.split(channel)[1], allowed)

    def is_channel_reliable(self, channel: str) -> bool:
        return True
