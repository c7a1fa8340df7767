"""Publishing changes to Pushpin (GRIP) when it fronts the SSE streams (GRIP_URL set).

The active listener publishes, so each change goes to Pushpin once, whatever the number
of Daphne processes. Items carry the event id and no previous id: ids are not contiguous
per channel, and a client that misses something resumes with Last-Event-ID through Django.
"""

from __future__ import annotations

from django.conf import settings
from django_eventstream.utils import publish_event

from realtime import kinds
from realtime.bridge import json_event, row_fragments
from realtime.bus import change_message
from realtime.changes import ChangeEvent
from realtime.eventstream import JSON_STREAM


def publish_change(event: ChangeEvent) -> None:
    if not settings.GRIP_URL:
        return
    message = change_message(event)
    event_id = str(event["id"])
    json_item = json_event(message)
    publish_event(JSON_STREAM, json_item.type, json_item.data, event_id, None)
    for channel, html in row_fragments(message, kinds.cached()):
        publish_event(channel, "message", html, event_id, None)
