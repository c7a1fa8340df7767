from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, unquote

import jwt
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection as db_connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from realtime import metrics
from realtime.access import scopes
from realtime.access.auth import accepts_token
from realtime.console import actions, history, shelves
from realtime.console.rows import (
    CAMERA,
    LAYOUTS,
    MAX_CAMERA_ID,
    Cursor,
    InvalidFilter,
    RowFilter,
    ViolationRow,
    render_row,
)
from realtime.models import Acknowledgement, Shelf
from realtime.pipeline import event_log, positions
from realtime.pipeline.positions import Position
from realtime.streams import health, sse
from realtime.streams.sse import JSON_STREAM
from realtime.violations import kinds, queries
from realtime.violations.kinds import Kind

logger = logging.getLogger(__name__)

COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
# What a note may not hold (PostgreSQL's text refuses NUL; the rest would only garble it).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A shelf's reason is one line.
ANY_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
MINUTES = re.compile(r"[0-9]{1,6}")


def _bad_request(message: str) -> HttpResponse:
    return HttpResponse(message, status=400, content_type="text/plain")


@accepts_token
@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return _bad_request(f"Bad filter: {exc}")
    registry = kinds.registry()
    scope = scopes.of_user(request.user)
    # Taken before the rows are read: the stream resumes from here, so nothing committed
    # in between (or committed later with a lower id) is missed (realtime.pipeline.positions).
    last_event_id = str(event_log.current_position())
    first = queries.page(registry, row_filter, scope=scope)
    context = {
        "rows": first.rows,
        "kinds": list(registry),
        "filter": row_filter,
        "counters": _counters(registry, row_filter, scope),
        "last_event_id": last_event_id,
        "next_cursor": first.next_cursor,
        "heartbeat_seconds": settings.REALTIME_HEARTBEAT_SECONDS,
        # The plant's local time now, as the detectors write theirs: rows' ages count from it.
        "local_now": timezone.localtime().replace(tzinfo=None).isoformat(timespec="seconds"),
        **shelves.panel_context(scope),
        "kind_sounds": _kind_sounds(registry),
        "reminder_minutes": settings.REALTIME_REMINDER_MINUTES,
        **history.live_trend_context(row_filter, scope),
    }
    return render(request, "realtime/dashboard.html", context)


def _kind_sounds(registry: kinds.Registry) -> dict[str, str]:
    """The URL of each kind's own alert sound (a kind without one plays the default)."""
    sounds = {}
    for kind in registry:
        if not kind.sound:
            continue
        try:
            sounds[kind.slug] = static(kind.sound)
        except ValueError:  # not in the collected static files' manifest
            logger.warning("the sound of a kind is not a static file", extra={"kind": kind.slug})
    return sounds


@accepts_token
@login_required
@require_GET
def older_rows(request: HttpRequest) -> HttpResponse:
    """`hx-get` of "Load older": the rows after `before` and, if more remain, the button again.

    Without `before`, the first page.
    """
    try:
        row_filter = RowFilter.from_query(request.GET)
        before = request.GET.get("before")
        cursor = Cursor.parse(before) if before else None
    except InvalidFilter as exc:
        return _bad_request(f"Bad filter: {exc}")
    older = queries.page(kinds.registry(), row_filter, cursor, scope=scopes.of_user(request.user))
    context = {"rows": older.rows, "filter": row_filter, "next_cursor": older.next_cursor}
    return render(request, "realtime/_older_rows.html", context)


@accepts_token
@login_required
@require_GET
def counters(request: HttpRequest) -> HttpResponse:
    """The counters, for the page to refresh them (rows age out of their window)."""
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return _bad_request(f"Bad filter: {exc}")
    scope = scopes.of_user(request.user)
    context = {"counters": _counters(kinds.registry(), row_filter, scope), "filter": row_filter}
    return render(request, "realtime/_counters.html", context)


def _counters(
    registry: kinds.Registry, row_filter: RowFilter, scope: scopes.Scope
) -> dict[str, Any]:
    since = queries.window_start()
    counts = queries.unacknowledged_counts(registry, row_filter.camera, since, scope=scope)
    return {
        "since": since.isoformat(timespec="seconds"),
        "hours": int(queries.COUNTER_WINDOW.total_seconds() // 3600),
        "kinds": [(kind, counts.get(kind.slug, 0)) for kind in registry],
    }


@accepts_token
@login_required
@require_GET
def kind_styles(request: HttpRequest) -> HttpResponse:
    """Each kind's badge colour, as a style sheet (no inline styles on the page)."""
    registry = kinds.registry()
    css = "".join(
        f".kind-{kind.slug} .kind-badge {{ background: {kind.colour}; }}\n"
        f".chart-fill.kind-{kind.slug} {{ fill: {kind.colour}; }}\n"
        for kind in registry
        if COLOUR.fullmatch(kind.colour)
    )
    response = HttpResponse(css, content_type="text/css")
    response["Cache-Control"] = "max-age=60"
    return response


@login_required
@require_POST
def acknowledge(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """An operator acknowledges a violation; every screen re-draws the row (a STATE event)."""
    row = _violation(request, kind, pk)
    actions.acknowledge(request.user.get_username(), [row])
    return HttpResponse(render_row(_violation(request, kind, pk)))


def _violation(request: HttpRequest, kind: str, pk: int) -> ViolationRow:
    """The violation a URL names, or a 404 (also for one the user may not see)."""
    row = queries.named(kind, pk, scope=scopes.of_user(request.user))
    if row is None:
        raise Http404("No such violation")
    return row


@login_required
@require_POST
def add_note(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """A note on a violation's acknowledgement (`text`); acknowledges it if nobody has.
    Answers with the row as it now is; every screen re-draws it (a STATE event)."""
    row = _violation(request, kind, pk)
    text = request.POST.get("text", "").strip()
    if not text:
        return _bad_request("A note needs some text.")
    if CONTROL_CHARACTERS.search(text):
        return _bad_request(
            "A note cannot contain control characters other than line breaks and tabs."
        )
    if len(text) > Acknowledgement.NOTE_MAX:
        return _bad_request(f"A note has at most {Acknowledgement.NOTE_MAX} characters.")
    actions.add_note(request.user.get_username(), row, text)
    return HttpResponse(render_row(_violation(request, kind, pk)))


@accepts_token
@login_required
@require_http_methods(["GET", "POST"])
def shelf_list(request: HttpRequest) -> HttpResponse:
    """GET: the cameras shelved now (the page's panel; a token may read it). POST `camera`,
    `minutes` and an optional `reason` (a login, as every action): shelves a camera from
    now, and every screen hears of it at once. Answers with the panel as it now is."""
    if request.method == "POST":
        camera = request.POST.get("camera", "").strip()
        if CAMERA.fullmatch(camera) is None or int(camera) > MAX_CAMERA_ID:
            return _bad_request("camera must be a camera number")
        limit = settings.REALTIME_SHELF_MAX_MINUTES
        minutes = request.POST.get("minutes", "").strip()
        if MINUTES.fullmatch(minutes) is None or not 1 <= int(minutes) <= limit:
            return _bad_request(f"minutes must be a whole number from 1 to {limit}")
        reason = request.POST.get("reason", "").strip()
        if ANY_CONTROL_CHARACTER.search(reason):
            return _bad_request("A reason cannot contain control characters.")
        if len(reason) > Shelf.REASON_MAX:
            return _bad_request(f"A reason has at most {Shelf.REASON_MAX} characters.")
        if not scopes.covers(scopes.of_user(request.user), int(camera)):
            raise Http404("No such camera")  # one of a site the user is not given
        try:
            shelves.shelve(request.user.get_username(), int(camera), int(minutes), reason)
        except shelves.UnknownTimeZone as exc:
            return HttpResponse(f"Cannot shelve: {exc}.", status=503, content_type="text/plain")
    return _shelves(request)


@login_required
@require_POST
def end_shelf(request: HttpRequest, pk: int) -> HttpResponse:
    """Ends a shelf before its time; answers with the panel, as it now is."""
    shelf = Shelf.objects.filter(pk=pk).first()
    if shelf is None or not scopes.covers(scopes.of_user(request.user), shelf.camera_id):
        raise Http404("No such shelf")
    shelves.end(request.user.get_username(), shelf)
    return _shelves(request)


def _shelves(request: HttpRequest) -> HttpResponse:
    context = shelves.panel_context(scopes.of_user(request.user))
    return render(request, "realtime/_shelves.html", context)


# A bulk acknowledgement names each violation as KIND:ID ("ppe:12"): at most this many.
ACKNOWLEDGE_AT_ONCE = 500  # below Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
VIOLATION_REF = re.compile(r"([a-z0-9_-]{1,40}):([0-9]{1,19})", re.ASCII)


@login_required
@require_POST
def acknowledge_many(request: HttpRequest) -> HttpResponse:
    """Several at once (the page's selected or visible rows): `violation=KIND:ID`, repeated.

    Answers with the rows as they now are; every screen re-draws them (STATE events).
    Violations that no longer exist, or that the user may not see, are left out (and
    nothing is done to them); a malformed one, or one of an unknown kind, is a 400,
    and then nothing is acknowledged.
    """
    refs = request.POST.getlist("violation")
    if not refs:
        return _bad_request("Select at least one violation.")
    if len(refs) > ACKNOWLEDGE_AT_ONCE:
        return _bad_request(f"At most {ACKNOWLEDGE_AT_ONCE} violations at once.")
    wanted: dict[Kind, set[int]] = {}
    for ref in refs:
        match = VIOLATION_REF.fullmatch(ref)
        kind = kinds.knowing(slug=match[1]).by_slug.get(match[1]) if match else None
        if match is None or kind is None or int(match[2]) > queries.BIGINT_MAX:
            return _bad_request(f"Not a violation: {ref[:60]!r} (expected KIND:ID, as ppe:12).")
        wanted.setdefault(kind, set()).add(int(match[2]))
    scope = scopes.of_user(request.user)
    found = [
        row for kind, ids in wanted.items() for row in queries.many(kind, sorted(ids), scope=scope)
    ]
    actions.acknowledge(request.user.get_username(), found)
    rows = [
        row for kind, ids in wanted.items() for row in queries.many(kind, sorted(ids), scope=scope)
    ]
    return HttpResponse("".join(render_row(row) for row in rows))


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


@accepts_token
@login_required
@require_GET
def legacy(request: HttpRequest) -> HttpResponse:
    return render(request, "realtime/legacy.html")


@accepts_token
@require_GET
@sse.pushpin_parameters_checked
def violation_events(request: HttpRequest) -> HttpResponseBase:
    """/events/violations/: each change as JSON, for EventSource clients."""
    return _stream(request, JSON_STREAM)


@accepts_token
@require_GET
@sse.pushpin_parameters_checked
def violation_row_events(request: HttpRequest) -> HttpResponseBase:
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
    return _stream(request, row_filter.stream_name(layout))


def _stream(request: HttpRequest, base: str) -> HttpResponseBase:
    # The stream of what this user may see: named after their scope (realtime.access.scopes),
    # never after anything the client sends.
    channel = scopes.channel(base, scopes.of_user(request.user))
    if _proxied_continuation(request):
        # Pushpin asking for the next part of a stream it holds: the signed es-meta it
        # carries was issued to an authenticated request (checked by django-sse).
        return sse.grip_response(request, channel)
    if not request.user.is_authenticated:
        refused = JsonResponse({"error": "authentication required"}, status=401)
        refused["WWW-Authenticate"] = 'Bearer realm="violations"'
        return refused
    position, error = _resume_point(request, channel)
    if error:
        return JsonResponse({"error": error}, status=400)
    if position is not None:
        # django-eventstream's request reads the header too: one form, whichever was sent.
        request.META["HTTP_LAST_EVENT_ID"] = f"{quote(channel)}:{position}"
    grip = getattr(request, "grip", None)
    if grip is not None and grip.proxied:
        # Pushpin holds the stream; django-eventstream answers it with GRIP instructions.
        return sse.grip_response(request, channel, position)
    response = sse.stream_response(request, channel, position)
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
        stream is not None and scopes.base_of(unquote(stream)) != scopes.base_of(channel)
    ):
        return None, (
            f"Last-Event-ID must be an event id such as 42, {quote(channel)}:42 or "
            f"{quote(channel)}:42.7733"
        )
    return position, None
