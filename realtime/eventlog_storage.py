"""django-eventstream over our event log: its ids and its replay are the log's.

Nothing is appended through django-eventstream (the trigger writes the log); live events
reach the streams through the bridge, and this storage serves reconnects
(Last-Event-ID) and the catch-up django-eventstream does when a stream falls behind.

Channels: "violations" carries the JSON frames; "table/<kind>/<camera>" and
"admin/<kind>/<camera>" ("*" for any) carry rendered `<tr>` fragments (realtime.rows).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.db import connection as db_connection
from django_eventstream.channelmanager import ChannelManagerBase
from django_eventstream.event import Event as StreamEvent
from django_eventstream.storage import EventDoesNotExist, StorageBase

from realtime import eventlog, kinds, metrics
from realtime.bridge import json_event
from realtime.bus import change_message
from realtime.changes import encode_frame
from realtime.eventstream import JSON_STREAM
from realtime.rows import InvalidFilter, RowFilter, render_change

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


class EventLogStorage(StorageBase):
    def append_event(self, channel: str, event_type: str, data: Any) -> StreamEvent:
        raise NotImplementedError("Events are appended by the PostgreSQL trigger, not by Django.")

    @releases_connection
    def get_current_id(self, channel: str) -> int:
        return eventlog.newest_id()

    @releases_connection
    def get_events(self, channel: str, last_id: int, limit: int = 100) -> list[StreamEvent]:
        first, last = eventlog.bounds()
        if last_id > last or (first is not None and last_id < first - 1):
            # Unknown to this log, or pruned since: the client gets a stream-reset.
            raise EventDoesNotExist(f"No event {last_id} in the log", last)
        if channel == JSON_STREAM:
            events = [
                json_event(change_message(change))
                for change in eventlog.changes_after(last_id, limit)
            ]
            metrics.EVENTS_REPLAYED.labels("sse_replay").inc(len(events))
            return events
        layout, row_filter = RowFilter.from_stream_name(channel)
        registry = kinds.registry()
        tables = [kind.table for kind in row_filter.kinds(registry)]
        events = []
        for change in eventlog.changes_after(last_id, limit, tables, row_filter.camera):
            html = render_change(
                encode_frame(change),
                change.get("state"),
                layout,
                registry,
                change.get("shelved", False),
            )
            if html is not None:
                events.append(StreamEvent(channel, "message", html, id=change["id"]))
        metrics.EVENTS_REPLAYED.labels("sse_replay").inc(len(events))
        return events


class ViolationChannelManager(ChannelManagerBase):
    def get_channels_for_request(self, request: Any, view_kwargs: dict[str, Any]) -> set[str]:
        return set(view_kwargs.get("channels", [JSON_STREAM]))

    def can_read_channel(self, user: Any, channel: str) -> bool:
        return user is not None and user.is_active and is_known_channel(channel)

    def is_channel_reliable(self, channel: str) -> bool:
        return True


def is_known_channel(channel: str) -> bool:
    if channel == JSON_STREAM:
        return True
    try:
        RowFilter.from_stream_name(channel)
    except InvalidFilter:
        return False
    return True
