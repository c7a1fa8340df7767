"""One member of the Channels group per server process, fanning each change out locally.

Every WebSocket and SSE connection of the process subscribes here instead of joining the
group itself: one channel-layer receiver per process (not one Redis connection and one
bounded channel per socket), and each message is decoded once per process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from django_eventstream.event import Event
from django_eventstream.views import get_listener_manager

from realtime.bus import BRIDGE_CHANNEL_PREFIX, GROUP, ChangeMessage, channel_layer
from realtime.listener import backoff_delay
from realtime.rows import KIND_BY_TABLE, LAYOUTS, channels_for, render_change

logger = logging.getLogger(__name__)

Subscriber = Callable[[ChangeMessage], None]

# The django-eventstream channel carrying the JSON frames (/events/violations/).
SSE_CHANNEL = "violations"
# Well under channels-redis' group_expiry, after which Redis forgets a member.
GROUP_REFRESH_SECONDS = 3600.0


class Bridge:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.ready = asyncio.Event()
        self.subscribe(wake_sse_streams)
        self.subscribe(wake_row_streams)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def dispatch(self, message: ChangeMessage) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(message)
            except Exception:
                logger.exception("bridge subscriber failed", extra={"event_id": message["id"]})

    async def run(self) -> None:
        """Receive from the group until cancelled; rejoin after channel-layer errors."""
        layer = channel_layer()
        channel = await layer.new_channel(BRIDGE_CHANNEL_PREFIX)
        attempt = 0
        while True:
            refresher: asyncio.Task[None] | None = None
            try:
                await layer.group_add(GROUP, channel)
                refresher = asyncio.create_task(self._refresh_membership(channel))
                self.ready.set()
                attempt = 0
                while True:
                    message = await layer.receive(channel)
                    if message.get("type") == "violation.changed":
                        self.dispatch(message)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff_delay(attempt, 0.5, 10.0)
                attempt += 1
                logger.warning(
                    "bridge lost the channel layer, rejoining",
                    extra={"error": repr(exc), "retry_in": round(delay, 2)},
                )
                await asyncio.sleep(delay)
            finally:
                if refresher is not None:
                    refresher.cancel()

    async def _refresh_membership(self, channel: str) -> None:
        layer = channel_layer()
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            await layer.group_add(GROUP, channel)


def wake_sse_streams(message: ChangeMessage) -> None:
    # What django-eventstream's own Redis listener calls for each event; see
    # tests/test_eventstream_contract.py, which fails if that internal API changes.
    event = Event(SSE_CHANNEL, "message", message["frame"], id=message["id"])
    get_listener_manager().add_to_queues(SSE_CHANNEL, event)


def wake_row_streams(message: ChangeMessage) -> None:
    # /events/violations/rows/: each change rendered once per layout, then queued on
    # every channel (one per filter) that keeps it.
    kind = KIND_BY_TABLE.get(message["table"])
    if kind is None:
        return
    manager = get_listener_manager()
    camera_id = _camera_id(message["frame"])
    for layout in LAYOUTS:
        html = render_change(message["frame"], layout)
        if html is None:
            continue
        for channel in channels_for(layout, kind.slug, camera_id):
            manager.add_to_queues(channel, Event(channel, "message", html, id=message["id"]))


def _camera_id(frame: str) -> object:
    return json.loads(frame)["data"].get("camera_id")
