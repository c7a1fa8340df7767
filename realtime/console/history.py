"""The history: every kind in one list over a range of time, a violation's own page, the
trend chart's fragment, and the CSV export (realtime.console.export).

The filters live in the URL (`from`, `to`, `kind`, `camera`, `acknowledged`) and are the
same for the list, the chart and the export. `from` and `to` are ISO dates or date-times
in the plant's local time (the detectors' violation_date and violation_time are): `from`
is included, a `to` date includes that whole day, a `to` date-time is where the range
ends (not included). A date-time with an offset (`Z`, `+02:00`) is converted first.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR, accepts_token
from realtime.alerts import sent
from realtime.console import actions as operator_actions
from realtime.console import media, shelves, trend
from realtime.console.forms import CONFIRM_ABOVE
from realtime.console.rows import Cursor, InvalidFilter, RowFilter, ViolationRow
from realtime.violations import kinds, queries

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
BOUND_HELP = gettext_lazy(
    "an ISO date or date-time in the plant's time, like 2025-03-01 or 2025-03-01T08:00"
)


# The chart counts back a day from its end and forward by months from its start: bounds
# nearer the calendar's ends than that would run out of years.
EARLIEST, LATEST = datetime(1, 1, 2), datetime(9999, 11, 30)


def parse_bound(name: str, raw: str | None, *, end: bool) -> datetime | None:
    """`from` or `to` as a naive local date-time; a `to` date is the start of the next day."""
    if not raw:
        return None
    moment = None
    try:
        if DATE.fullmatch(raw):
            start = datetime.combine(date.fromisoformat(raw), time.min)
            moment = start + timedelta(days=1) if end else start
        elif DATE_TIME.fullmatch(raw):
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is not None:
                moment = timezone.localtime(moment).replace(tzinfo=None)
    except OverflowError:
        return None  # the end of 9999-12-31: no end at all
    except ValueError:
        pass
    if moment is None:
        raise InvalidFilter(_("%(name)s must be %(help)s") % {"name": name, "help": BOUND_HELP})
    if not EARLIEST <= moment <= LATEST:
        raise InvalidFilter(
            _("%(name)s must be between 0001-01-02 and 9999-11-30") % {"name": name}
        )
    return moment


def history_filter(query: QueryDict) -> RowFilter:
    """The history's filters: the live table's (kind, camera) and a range, acknowledged or not."""
    row_filter = RowFilter.from_query(query)
    raw_ack = query.get("acknowledged") or ""
    if raw_ack not in ("", "0", "1"):
        raise InvalidFilter(_("acknowledged must be 1 (acknowledged only) or 0 (not acknowledged)"))
    if raw_ack == "1" and row_filter.unacknowledged:
        raise InvalidFilter(_("acknowledged=1 and unacknowledged=1 exclude each other"))
    since = parse_bound("from", query.get("from"), end=False)
    until = parse_bound("to", query.get("to"), end=True)
    if since is not None and until is not None and since >= until:
        raise InvalidFilter(_("from must be before to"))
    return replace(
        row_filter,
        acknowledged=raw_ack == "1",
        unacknowledged=row_filter.unacknowledged or raw_ack == "0",
        since=since,
        until=until,
    )


def _bad_request(exc: Exception) -> HttpResponse:
    text = _("Bad filter: %(why)s") % {"why": exc}
    return HttpResponse(text + "\n", status=400, content_type="text/plain")


@accepts_token
@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    try:
        row_filter = history_filter(request.GET)
        before = request.GET.get("before")
        cursor = Cursor.parse(before) if before else None
    except InvalidFilter as exc:
        return _bad_request(exc)
    registry = kinds.registry()
    scope = scopes.of_user(request.user)
    chart, too_long = None, False
    if cursor is None:  # the chart is the range's, drawn once: paging does not count it again
        since, until = trend.chart_range(row_filter)
        try:
            chart = trend.build(registry, row_filter, since, until, live=False, scope=scope)
        except trend.RangeTooLong:
            too_long = True
    found = queries.page(registry, row_filter, cursor, scope=scope)
    # The range as typed (a `to` date stays a date), the rest as parsed.
    query = row_filter.as_query() | {
        key: request.GET[key] for key in ("from", "to") if request.GET.get(key)
    }
    context = {
        "rows": found.rows,
        "kinds": list(registry),
        "filter": row_filter,
        "form": _form_values(query, row_filter),
        "query": urlencode(query),
        "older": _with(query, before=str(found.next_cursor)) if found.next_cursor else None,
        "is_first_page": cursor is None,
        "chart_too_long": too_long,
        "time_zone": settings.TIME_ZONE,
        "confirm_above": CONFIRM_ABOVE,
        **trend_context(chart, reverse("history"), query),
    }
    return render(request, "realtime/history.html", context)


@accepts_token
@login_required
@require_GET
def trend_fragment(request: HttpRequest) -> HttpResponse:
    """The live table's chart (the last 24 hours, with its kind and camera), re-drawn."""
    try:
        row_filter = RowFilter.from_query(request.GET)
    except InvalidFilter as exc:
        return _bad_request(exc)
    context = live_trend_context(row_filter, scopes.of_user(request.user))
    return render(request, "realtime/_trend.html", context)


def live_trend_context(row_filter: RowFilter, scope: scopes.Scope) -> dict[str, Any]:
    live_filter = RowFilter(row_filter.kind, row_filter.camera)
    since, until = trend.live_range()
    chart = trend.build(kinds.registry(), live_filter, since, until, live=True, scope=scope)
    return trend_context(chart, reverse("dashboard"), live_filter.as_query())


def trend_context(chart: trend.Chart | None, page: str, query: dict[str, str]) -> dict[str, Any]:
    without_camera = {k: v for k, v in query.items() if k != "camera"}
    return {
        "chart": chart,
        "trend_url": reverse("trend") + "?" + urlencode(query),
        "camera_link": page + "?" + urlencode({**without_camera, "camera": ""}),
    }


@accepts_token
@login_required
@require_GET
def violation_detail(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """One violation, every column of it and its acknowledgement: a page to share."""
    row = queries.named(kind, pk, scope=scopes.of_user(request.user))
    if row is None:
        raise Http404("No such violation")
    # htmx asks for the dialog of the live table: the detail without the page around it.
    fragment = request.headers.get("HX-Request") == "true"
    response = render_detail(request, row, fragment=fragment)
    patch_vary_headers(response, ["HX-Request"])
    return response


def render_detail(request: HttpRequest, row: ViolationRow, *, fragment: bool) -> HttpResponse:
    """A violation's detail as it is now: its columns, image, state, what was done to it,
    and what the user may do to it (a login acts; a token only reads)."""
    columns = [
        ("id", str(row.id)),
        ("camera_id", "" if row.camera_id is None else str(row.camera_id)),
        ("violation_date", row.date_text),
        ("violation_time", row.time_text),
        ("violation_image", row.violation_image),
        *row.filled_extra,
    ]
    context = {
        "row": row,
        "columns": columns,
        "image": media.row_image(row),
        "actions": operator_actions.history(row),
        "shelves": shelves.covering(row),
        "can_act": request.user.is_authenticated and not getattr(request, TOKEN_ID_ATTR, None),
        "shelf_choices": shelves.choices(),
        "can_undo": operator_actions.can_undo(request.user.get_username(), row),
        # The messages sent about it, for those who may read them (else None: no section).
        "notifications": sent.of_violation(request.user, row.kind, row.id),
        # Its camera shelved now (not necessarily when the violation happened).
        "camera_shelf": (
            None
            if row.camera_id is None
            else next(iter(shelves.active(frozenset({row.camera_id}))), None)
        ),
    }
    return render(request, "realtime/_detail.html" if fragment else "realtime/detail.html", context)


def _with(query: dict[str, str], **more: str) -> str:
    return urlencode({**query, **more})


def _form_values(query: dict[str, str], row_filter: RowFilter) -> dict[str, str]:
    acknowledged = "1" if row_filter.acknowledged else "0" if row_filter.unacknowledged else ""
    return {
        "from": query.get("from", ""),
        "to": query.get("to", ""),
        "camera": "" if row_filter.camera is None else str(row_filter.camera),
        "acknowledged": acknowledged,
    }
