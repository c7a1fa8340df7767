"""django-eventstream over our event log: its ids and its replay are the log's.

Nothing is appended through django-eventstream (the trigger writes the log); live events
reach the streams through the bridge, and this storage serves reconnects
(Last-Event-ID) and the catch-up django-eventstream does when a stream falls behind.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max, Min
from django_eventstream.channelmanager import ChannelManagerBase
from django_eventstream.event import Event as StreamEvent
from django_eventstream.storage import EventDoesNotExist, StorageBase

from realtime.bridge import SSE_CHANNEL
from realtime.changes import encode_frame
from realtime.models import Event


class EventLogStorage(StorageBase):  # type: ignore[misc]
    def append_event(self, channel: str, event_type: str, data: Any) -> StreamEvent:
        raise NotImplementedError("Events are appended by the PostgreSQL trigger, not by Django.")

    def get_current_id(self, channel: str) -> int:
        return Event.objects.aggregate(last=Max("id"))["last"] or 0

    def get_events(self, channel: str, last_id: int, limit: int = 100) -> list[StreamEvent]:
        bounds = Event.objects.aggregate(first=Min("id"), last=Max("id"))
        first, last = bounds["first"], bounds["last"] or 0
        if last_id > last or (first is not None and last_id < first - 1):
            # Unknown to this log, or pruned since: the client gets a stream-reset.
            raise EventDoesNotExist(f"No event {last_id} in the log", last)
        rows = Event.objects.filter(id__gt=last_id).order_by("id")[:limit]
        return [
            StreamEvent(
                channel,
                "message",
                encode_frame({"id": e.id, "table": e.table_name, "op": e.op, "data": e.data}),  # type: ignore[typeddict-item]
                id=e.id,
            )
            for e in rows
        ]


class ViolationChannelManager(ChannelManagerBase):  # type: ignore[misc]
    def get_channels_for_request(self, request: Any, view_kwargs: dict[str, Any]) -> set[str]:
        return set(view_kwargs.get("channels", [SSE_CHANNEL]))

    def can_read_channel(self, user: Any, channel: str) -> bool:
        return user is not None and user.is_active and channel == SSE_CHANNEL

    def is_channel_reliable(self, channel: str) -> bool:
        return True
