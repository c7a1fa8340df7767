from __future__ import annotations

import re
from urllib.parse import quote, unquote

import jwt
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection as db_connection
from django.db.models import Max
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_eventstream.views import events

from realtime import health, metrics, sse
from realtime.bridge import SSE_CHANNEL
from realtime.models import Event
from realtime.rows import (
    KIND_BY_SLUG,
    KINDS,
    LAYOUTS,
    PAGE_SIZE,
    InvalidFilter,
    RowFilter,
    latest_rows,
    render_row,
    row_of,
    unacknowledged_counts,
)

# What django-eventstream sends as `id:` ("violations:42", the channel URL-quoted), or the
# bare event id ("42").
LAST_EVENT_ID = re.compile(r"^(?:([\w/%*.-]+):)?(\d{1,18})$")
MAX_OFFSET = 1_000_000


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return HttpResponse(f"Bad filter: {exc}", status=400, content_type="text/plain")
    # Rendered before the stream starts: the stream resumes from here, so nothing
    # committed in between is missed.
    last_event_id = Event.objects.aggregate(last=Max("id"))["last"] or 0
    rows = latest_rows(row_filter)
    unacknowledged = unacknowledged_counts(row_filter)
    context = {
        "rows": rows,
        "kinds": KINDS,
        "filter": row_filter,
        "counts": [(kind, unacknowledged[kind.slug]) for kind in KINDS],
        "last_event_id": last_event_id,
        "next_offset": PAGE_SIZE if len(rows) == PAGE_SIZE else None,
    }
    return render(request, "realtime/dashboard.html", context)


@login_required
@require_GET
def older_rows(request: HttpRequest) -> HttpResponse:
    """`hx-get` of "Load older": the next page of rows and, if any remain, the button again."""
    try:
        row_filter = RowFilter.from_query(request.GET)
        offset = int(request.GET.get("offset", "0"))
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError
    except (InvalidFilter, ValueError):
        return HttpResponse("Bad filter or offset", status=400, content_type="text/plain")
    rows = latest_rows(row_filter, offset)
    context = {
        "rows": rows,
        "filter": row_filter,
        "next_offset": offset + PAGE_SIZE if len(rows) == PAGE_SIZE else None,
    }
    return render(request, "realtime/_older_rows.html", context)


@login_required
@require_POST
def acknowledge(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """An operator acknowledges a violation; every screen learns it as an UPDATE of the row."""
    violation_kind = KIND_BY_SLUG.get(kind)
    if violation_kind is None:
        raise Http404("No such kind of violation")
    # Only the first acknowledgement counts: who saw it first, and when.
    violation_kind.model._default_manager.filter(pk=pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=request.user.get_username()
    )
    row = row_of(violation_kind, pk)
    if row is None:
        raise Http404("No such violation")
    return HttpResponse(render_row(row))


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


@login_required
@require_GET
def legacy(request: HttpRequest) -> HttpResponse:
    return render(request, "realtime/legacy.html")


@require_GET
def violation_events(request: HttpRequest) -> HttpResponse:
    """/events/violations/: each change as JSON, for EventSource clients."""
    return _stream(request, SSE_CHANNEL)


@require_GET
def violation_row_events(request: HttpRequest) -> HttpResponse:
    """/events/violations/rows/: each violation as a `<tr>`, for the HTMX table.

    ?kind= and ?camera= filter like the page; ?layout=admin renders admin changelist rows.
    """
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    layout = request.GET.get("layout", "table")
    if layout not in LAYOUTS:
        return JsonResponse({"error": "layout must be table or admin"}, status=400)
    return _stream(request, row_filter.channel(layout))  # type: ignore[arg-type]


def _stream(request: HttpRequest, channel: str) -> HttpResponse:
    if _proxied_continuation(request):
        # Pushpin asking for the next part of a stream it holds: the signed es-meta it
        # carries was issued to an authenticated request (checked by django-eventstream).
        return events(request, channels=[channel])  # type: ignore[no-any-return]
    if not request.user.is_authenticated:
        response = JsonResponse({"error": "authentication required"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="violations"'
        return response
    last_event_id, error = _resume_point(request, channel)
    if error:
        return JsonResponse({"error": error}, status=400)
    if last_event_id is not None:
        # django-eventstream reads the header; normalise whichever form the client used.
        request.META["HTTP_LAST_EVENT_ID"] = f"{channel}:{last_event_id}"
    grip = getattr(request, "grip", None)
    if grip is not None and grip.proxied:
        # Pushpin holds the stream; django-eventstream answers it with GRIP instructions.
        return events(request, channels=[channel])  # type: ignore[no-any-return]
    response = sse.stream_response(request, channel)
    if isinstance(response, StreamingHttpResponse):
        # The stream may last for days: do not hold a database connection (opened for the
        # login) for all that time. Django opens a new one when it needs one.
        db_connection.close()
    return response


def _proxied_continuation(request: HttpRequest) -> bool:
    grip = getattr(request, "grip", None)
    if grip is None or not grip.proxied or "es-meta" not in request.GET:
        return False
    try:
        jwt.decode(request.GET["es-meta"], settings.SECRET_KEY.encode(), algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return False
    return True


def _resume_point(request: HttpRequest, channel: str) -> tuple[int | None, str | None]:
    raw = request.headers.get("Last-Event-ID") or next(
        (value for value in reversed(request.GET.getlist("lastEventId")) if value), None
    )
    if raw is None:
        return None, None
    match = LAST_EVENT_ID.match(raw.strip())
    if match is None or (match.group(1) is not None and unquote(match.group(1)) != channel):
        return None, f"Last-Event-ID must be an event id such as 42 or {quote(channel)}:42"
    return int(match.group(2)), None
