"""Publishing changes to Pushpin (GRIP) when it fronts the SSE streams (GRIP_URL set).

The active listener publishes, so each change goes to Pushpin once, whatever the number
of Daphne processes. Items carry the event id and no previous id: ids are not contiguous
per channel, and a client that misses something resumes with Last-Event-ID through Django.
It also ends the streams Pushpin holds for a user (realtime.access.held_streams).
"""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings
from django_eventstream.utils import publish_event, sse_encode_error
from django_grip import publish
from gripcontrol import HttpStreamFormat

from realtime.access import scopes
from realtime.pipeline.bus import change_message, message_position
from realtime.pipeline.changes import ChangeEvent
from realtime.streams.bridge import Targets, in_scope, json_event, row_fragments
from realtime.streams.sse import JSON_STREAM
from realtime.violations import kinds


def publish_change(event: ChangeEvent, every_scope: Collection[scopes.Scope] = (None,)) -> None:
    """To each stream name Pushpin may hold that keeps the change: one per scope some
    user has (realtime.access.scopes.all_scopes), since Pushpin cannot say which it holds."""
    if not settings.GRIP_URL:
        return
    message = change_message(event)
    event_id = message_position(message)
    for scope in every_scope:
        for seen in in_scope([message], scope):
            json_item = json_event(seen)
            channel = scopes.channel(JSON_STREAM, scope)
            publish_event(channel, json_item.type, json_item.data, event_id, None)
    for channel, html in row_fragments(message, kinds.cached(), Targets.every(every_scope)):
        publish_event(channel, "message", html, event_id, None)


def end_user_streams(user_id: int, *, forbidden: bool) -> None:
    """End every stream Pushpin holds for the user, and no one else's: django-eventstream
    subscribes each held stream to its user's channel, `user-<id>`. With a stream-error
    when the user's right ended (as realtime.access.open_streams ends a direct stream); plainly
    when a token of theirs ended or their sites changed: the EventSource reconnects,
    through Django's checks, and resumes from its Last-Event-ID in its new scope."""
    if not settings.GRIP_URL:
        return
    channel = f"user-{user_id}"
    # The subscription's filter (require-sub) passes what names a channel it holds.
    meta = {"require_sub": channel}
    if forbidden:
        error = sse_encode_error("forbidden", "The token or user is no longer valid.")
        publish(channel, HttpStreamFormat(error), meta=meta)
    # Queued after the error on the same publisher thread, so sent after it.
    publish(channel, HttpStreamFormat(close=True), meta=meta)
