"""Pushpin in front of the SSE streams (GRIP_URL set): what Django publishes to it, and
how Django answers the requests it makes.

The active listener publishes, so each change goes to Pushpin once, whatever the number
of Daphne processes. Items carry the change's id, chained to the one before (see
`_published`), and their `id:` line written out: Pushpin sends the same bytes to every
stream it holds, without the filters django-eventstream asks it to run for each of them
(see grip_response). A client that misses something resumes with Last-Event-ID through
Django. It also ends the streams Pushpin holds for a user (realtime.access.held_streams).

Pushpin's own requests (a held stream's start, its continuations with a signed `es-meta`,
`recover`) are answered by django-eventstream's view, which reads the storage with an int
id: a position's horizon travels beside it (realtime.streams.storage.resume_horizons).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any, TypeAlias
from urllib.parse import quote

import jwt
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django_eventstream.utils import make_id, sse_encode_error, sse_encode_event
from django_eventstream.views import events
from django_grip import get_pubcontrol, publish
from gripcontrol import HttpStreamFormat, parse_grip_uri

from realtime.access import scopes
from realtime.pipeline.bus import ChangeMessage, change_message, message_position
from realtime.pipeline.changes import ChangeEvent
from realtime.pipeline.positions import BadPosition, Position, parse_stream_position
from realtime.streams import names, sse
from realtime.streams.formats import Targets, in_scope, row_fragments
from realtime.streams.sse_fanout import json_event
from realtime.violations import kinds


@functools.cache
def _every_pushpin() -> None:
    """django-grip publishes to GRIP_URL's Pushpin; the others of GRIP_URL (one per machine)
    are added to its publisher once."""
    more = [parse_grip_uri(url) for url in settings.REALTIME_MORE_GRIP_URLS]
    if more:
        get_pubcontrol().apply_grip_config(more)


# Pushpin delivers a published item to a held stream itself only when the item's prev-id
# is the stream's last id; otherwise it asks Django for what the stream lacks (a `recover`
# request, read from the log). Items published without prev-id made every held stream
# recover on every change: one request to Django per client per change, seconds of delay
# at a thousand clients (docs/performance.md, issue #27). So each item names the one
# published before it on its stream name (`_published`, the active listener's), in ids
# Pushpin compares as text: the change's bare id, which a read of the log and the listener
# write alike (a position's horizon differs between them). The client still gets the whole
# position as its event's `id:`, written into the item; a recover from a bare id finds the
# horizon the listener published it with (`_horizons`, every server process's, from the
# bus). Where the ids still differ (a new listener) the stream recovers once, from the log,
# and follows the chain from there.
_published: dict[str, str] = {}
BUILD_ID, SKIP_USERS = "build-id", "skip-users"


class PublishedHorizons:
    """The horizon the listener published each recent change with, by its id (from the
    bus, which carries the same changes the listener publishes to Pushpin)."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._by_id: dict[int, str | None] = {}

    def remember(self, messages: list[ChangeMessage]) -> None:
        for message in messages:
            try:
                self._by_id[message["id"]] = Position.parse(message_position(message)).horizon
            except BadPosition:
                continue
        while len(self._by_id) > self.LIMIT:
            del self._by_id[next(iter(self._by_id))]

    def position(self, after: int) -> Position:
        """Where a held stream whose last id is `after` is."""
        return Position(after, self._by_id.get(after))


_horizons = PublishedHorizons()
remember_positions = _horizons.remember


def _publish(channel: str, event_type: str, data: str, position: str) -> None:
    """One change's event on a stream Pushpin may hold, chained to the one before it."""
    chained = str(Position.parse(position).after)
    # Written out as the client gets it: held streams have no build-id filter (see
    # grip_response).
    content = sse_encode_event(event_type, data, event_id=make_id({channel: position}))
    publish(
        f"events-{quote(channel)}",
        HttpStreamFormat(content),
        id=chained,
        prev_id=_published.get(channel),
    )
    _published[channel] = chained


def publish_change(event: ChangeEvent, every_scope: Collection[scopes.Scope] = (None,)) -> None:
    """To each stream name Pushpin may hold that keeps the change: one per scope some
    user has (realtime.access.scopes.all_scopes), since Pushpin cannot say which it holds."""
    if not settings.GRIP_URL:
        return
    _every_pushpin()
    message = change_message(event)
    event_id = message_position(message)
    for scope in every_scope:
        for seen in in_scope([message], scope):
            json_item = json_event(seen)
            channel = names.scoped(names.JSON_STREAM, scope)
            _publish(channel, json_item.type, json_item.data, event_id)
    for channel, html in row_fragments(message, kinds.cached(), Targets.every(every_scope)):
        _publish(channel, "message", html, event_id)


def end_user_streams(user_id: int, *, forbidden: bool) -> None:
    """End every stream Pushpin holds for the user, and no one else's: django-eventstream
    subscribes each held stream to its user's channel, `user-<id>`. With a stream-error
    when the user's right ended (as realtime.access.open_streams ends a direct stream); plainly
    when a token of theirs ended or their sites changed: the EventSource reconnects,
    through Django's checks, and resumes from its Last-Event-ID in its new scope."""
    if not settings.GRIP_URL:
        return
    _every_pushpin()
    channel = f"user-{user_id}"
    # The subscription's filter (require-sub) passes what names a channel it holds.
    meta = {"require_sub": channel}
    if forbidden:
        error = sse_encode_error("forbidden", "The token or user is no longer valid.")
        publish(channel, HttpStreamFormat(error), meta=meta)
    # Queued after the error on the same publisher thread, so sent after it.
    publish(channel, HttpStreamFormat(close=True), meta=meta)


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
        if recovered.horizon is None:
            recovered = _horizons.position(recovered.after)  # a chained id (see _published)
        last[name] = str(recovered.after)
        if name == f"events-{quote(channel)}":
            horizons[channel] = recovered.horizon
    reset = resume_horizons.set(horizons)
    try:
        response: HttpResponseBase = events(request, channels=[channel])
    finally:
        resume_horizons.reset(reset)
    if request.GET.get("link") != "next" and isinstance(response, HttpResponse):
        # A stream's start (not the next part of one Pushpin holds): when to come back.
        response.content = sse.reconnect_time() + response.content
    instruct = getattr(getattr(request, "grip", None), "instruct", None)
    escaped = False
    for held in getattr(instruct, "channels", ()):
        # The stream's last id as the listener's items chain it (see _published).
        if held.prev_id:
            try:
                held.prev_id = str(Position.parse(held.prev_id).after)
            except BadPosition:
                pass
        # django-eventstream asks Pushpin to run build-id on this response and on every
        # item for this stream, to write ids the items here carry already, and skip-users,
        # for items published with `skip_users` (none here). Pushpin ran both for each
        # held stream on each change (docs/performance.md).
        escaped = escaped or BUILD_ID in held.filters
        held.filters = [name for name in held.filters if name not in (BUILD_ID, SKIP_USERS)]
    if escaped and isinstance(response, HttpResponse):
        # What the filter did to the response: its events' `%` were written `%%` for it.
        response.content = response.content.replace(b"%%", b"%")
    return response
