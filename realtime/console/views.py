"""The operator's pages and the fragments they read again: the live table, Load older, the
counters, the kinds' colours, the legacy WebSocket page.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import render
from django.templatetags.static import static
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR, accepts_token
from realtime.alerts import presence
from realtime.console import history, shelves, trend
from realtime.console.rows import (
    Cursor,
    InvalidFilter,
    RowFilter,
)
from realtime.pipeline import event_log
from realtime.violations import kinds, queries

logger = logging.getLogger(__name__)


COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def bad_request(message: str) -> HttpResponse:
    return HttpResponse(message, status=400, content_type="text/plain")


@accepts_token
@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return bad_request(_("Bad filter: %(why)s") % {"why": exc})
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
        "watching": _watching(request, scope, drawing=row_filter),
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
        return bad_request(_("Bad filter: %(why)s") % {"why": exc})
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
        return bad_request(_("Bad filter: %(why)s") % {"why": exc})
    scope = scopes.of_user(request.user)
    context = {"counters": _counters(kinds.registry(), row_filter, scope), "filter": row_filter}
    return render(request, "realtime/_counters.html", context)


@require_GET
def watching(request: HttpRequest) -> HttpResponse:
    """Who has a live table open for the operator's sites, for the page to refresh."""
    if not request.user.is_authenticated:
        # Not login_required's redirect: htmx would put the login page inside the live
        # table's page. It swaps no error, and the page's stream says the session ended.
        return HttpResponse(status=401)
    context = {"watching": _watching(request, scopes.of_user(request.user))}
    return render(request, "realtime/_watching.html", context)


def _watching(
    request: HttpRequest, scope: scopes.Scope, drawing: RowFilter | None = None
) -> list[str]:
    """The usernames watching `scope`; and the user's own when `drawing` their live table
    (with a session, of cameras they may see): its stream opens in a moment, and the page
    should not say they are not there until the fragment is read again."""
    names = presence.watchers(scope)
    if drawing is not None and getattr(request, TOKEN_ID_ATTR, None) is None:
        camera = drawing.camera
        if scopes.covers(scope, camera) if camera is not None else scope != scopes.NOTHING:
            names = sorted({*names, request.user.get_username()})
    return names


def _counters(
    registry: kinds.Registry, row_filter: RowFilter, scope: scopes.Scope
) -> dict[str, Any]:
    # The live chart's window: the counters and the chart count the same rows.
    since, until = trend.live_range()
    counts = queries.unacknowledged_counts(registry, row_filter.camera, since, until, scope=scope)
    return {
        "since": since.isoformat(timespec="seconds"),
        "start": since,
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


@accepts_token
@login_required
@require_GET
def legacy(request: HttpRequest) -> HttpResponse:
    return render(request, "realtime/legacy.html")
