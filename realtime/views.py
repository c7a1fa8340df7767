from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_eventstream.views import events

from realtime.bridge import SSE_CHANNEL
from realtime.models import HumanDetection, LotoDetection, PpeDetection

# What django-eventstream sends as `id:` ("violations:42"), or the bare event id ("42").
LAST_EVENT_ID = re.compile(rf"^(?:{SSE_CHANNEL}:)?(\d{{1,18}})$")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    latest: list[dict[str, Any]] = []
    for kind, model in (("human", HumanDetection), ("LOTO", LotoDetection), ("PPE", PpeDetection)):
        for row in model.objects.order_by("-id")[:50]:
            latest.append({"kind": kind, "table": model._meta.db_table, "row": row})
    latest.sort(
        key=lambda item: (item["row"].violation_date or 0, item["row"].violation_time or 0),
        reverse=True,
    )  # type: ignore[no-any-return]
    return render(request, "realtime/dashboard.html", {"latest": latest[:50]})


def violation_events(request: HttpRequest) -> HttpResponse:
    """/events/violations/: the change stream for EventSource clients."""
    if not request.user.is_authenticated:
        response = JsonResponse({"error": "authentication required"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="violations"'
        return response
    last_event_id, error = _resume_point(request)
    if error:
        return JsonResponse({"error": error}, status=400)
    if last_event_id is not None:
        # django-eventstream reads the header; normalise whichever form the client used.
        request.META["HTTP_LAST_EVENT_ID"] = f"{SSE_CHANNEL}:{last_event_id}"
    return events(request, channels=[SSE_CHANNEL])  # type: ignore[no-any-return]


def _resume_point(request: HttpRequest) -> tuple[int | None, str | None]:
    raw = request.headers.get("Last-Event-ID") or next(
        (value for value in reversed(request.GET.getlist("lastEventId")) if value), None
    )
    if raw is None:
        return None, None
    match = LAST_EVENT_ID.match(raw.strip())
    if match is None:
        return None, "Last-Event-ID must be an event id such as 42 or violations:42"
    return int(match.group(1)), None
