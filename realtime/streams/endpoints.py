"""The streams' HTTP endpoints: the two SSE routes (a stream of what the user may see,
from the position the client resumes at), /metrics and /healthz."""

from __future__ import annotations

from urllib.parse import quote, unquote

import jwt
from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from realtime import metrics, pool
from realtime.access import scopes
from realtime.access.auth import accepts_token, opens_stream
from realtime.console.rows import (
    InvalidFilter,
    RowFilter,
)
from realtime.pipeline import positions
from realtime.pipeline.positions import Position
from realtime.streams import health, names, pushpin, sse


@accepts_token
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """/metrics in the Prometheus text format; a login or a token, as for the streams."""
    if not request.user.is_authenticated:
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="violations"'
        return response
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """No login: for load balancers and supervisors. Nothing secret in it."""
    healthy, report = health.check()
    response = JsonResponse(report, status=200 if healthy else 503)
    response["Cache-Control"] = "no-store"
    return response


@opens_stream
@require_GET
@pushpin.pushpin_parameters_checked
def violation_events(request: HttpRequest) -> HttpResponseBase:
    """/events/violations/: each change as JSON, for EventSource clients."""
    return _stream(request, names.JSON_STREAM)


@opens_stream
@require_GET
@pushpin.pushpin_parameters_checked
def violation_row_events(request: HttpRequest) -> HttpResponseBase:
    """/events/violations/rows/: each violation as a `<tr>`, for the HTMX table.

    ?kind= and ?camera= filter like the page; ?layout=admin renders admin changelist rows.
    """
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    form = request.GET.get("layout", "table")
    if form not in names.FORMS:
        return JsonResponse({"error": "layout must be table or admin"}, status=400)
    # Rows drawn in the request's language (LocaleMiddleware: the user's choice, or the
    # browser's Accept-Language).
    return _stream(request, row_filter.stream_name(names.layout(form)))


def _stream(request: HttpRequest, base: str) -> HttpResponseBase:
    # The stream of what this user may see: named after their scope (realtime.access.scopes),
    # never after anything the client sends.
    channel = names.scoped(base, scopes.of_user(request.user))
    if _proxied_continuation(request):
        # Pushpin asking for the next part of a stream it holds: the signed es-meta it
        # carries was issued to an authenticated request (checked by django-sse).
        return pushpin.grip_response(request, channel)
    if not request.user.is_authenticated:
        refused = JsonResponse({"error": "authentication required"}, status=401)
        refused["WWW-Authenticate"] = 'Bearer realm="violations"'
        return refused
    # Who it is and what they may see are known. What follows waits (for the event loop,
    # for this thread's turn among the others) and the stream may last for days: without
    # a database connection (realtime.pool).
    pool.release()
    position, error = _resume_point(request, channel)
    if error:
        return JsonResponse({"error": error}, status=400)
    if position is not None:
        # django-eventstream's request reads the header too: one form, whichever was sent.
        request.META["HTTP_LAST_EVENT_ID"] = f"{quote(channel)}:{position}"
    grip = getattr(request, "grip", None)
    if grip is not None and grip.proxied:
        # Pushpin holds the stream; django-eventstream answers it with GRIP instructions.
        return pushpin.grip_response(request, channel, position)
    return sse.stream_response(request, channel, position)


def _proxied_continuation(request: HttpRequest) -> bool:
    grip = getattr(request, "grip", None)
    if grip is None or not grip.proxied or "es-meta" not in request.GET:
        return False
    try:
        jwt.decode(request.GET["es-meta"], settings.SECRET_KEY.encode(), algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return False
    return True


def _resume_point(request: HttpRequest, channel: str) -> tuple[Position | None, str | None]:
    """The position the client resumes from (`Last-Event-ID`, or `?lastEventId=` when an
    EventSource had to be made anew), if any; or what is wrong with it."""
    raw = request.headers.get("Last-Event-ID") or next(
        (value for value in reversed(request.GET.getlist("lastEventId")) if value), None
    )
    if raw is None:
        return None, None
    try:
        stream, position = positions.parse_stream_position(raw)
    except positions.BadPosition:
        stream, position = "", None
    # A stream of the same name in another scope is fine: the user's scope changed since
    # (their grants), and they resume with the new one.
    if position is None or (
        stream is not None
        and names.without_language(names.base_of(unquote(stream)))
        != names.without_language(names.base_of(channel))
    ):
        return None, (
            f"Last-Event-ID must be an event id such as 42, {quote(channel)}:42 or "
            f"{quote(channel)}:42.7733"
        )
    return position, None
