"""Publishing changes to Pushpin (GRIP) when it fronts the SSE streams (GRIP_URL set).

The active listener publishes, so each change goes to Pushpin once, whatever the number
of Daphne processes. Items carry the event id and no previous id: ids are not contiguous
per channel, and a client that misses something resumes with Last-Event-ID through Django.
"""

from __future__ import annotations

import json

from django.conf import settings
from django_eventstream.utils import publish_event

from realtime.bridge import SSE_CHANNEL
from realtime.changes import ChangeEvent, encode_frame
from realtime.rows import KIND_BY_TABLE, LAYOUTS, channels_for, render_change


def publish_change(event: ChangeEvent) -> None:
    if not settings.GRIP_URL:
        return
    frame = encode_frame(event)
    event_id = str(event["id"])
    publish_event(SSE_CHANNEL, "message", frame, event_id, None)
    kind = KIND_BY_TABLE.get(event["table"])
    if kind is None:
        return
    camera_id = json.loads(frame)["data"].get("camera_id")
    for layout in LAYOUTS:
        html = render_change(frame, layout)
        if html is None:
            continue
        for channel in channels_for(layout, kind.slug, camera_id):
            publish_event(channel, "message", html, event_id, None)
