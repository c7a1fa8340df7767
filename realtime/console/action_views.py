"""What an operator does from the console (POST, with a login): acknowledge, note, shelve,
end a shelf. Each validates with a form (realtime.console.forms), acts through
realtime.console.actions or realtime.console.shelves, and answers with what is now drawn."""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from realtime.access import scopes
from realtime.access.auth import accepts_token
from realtime.console import actions, shelves
from realtime.console.rows import (
    ViolationRow,
    render_row,
)
from realtime.console.views import bad_request
from realtime.models import Acknowledgement, Shelf
from realtime.violations import cameras, kinds, queries
from realtime.violations.kinds import Kind

# What a note may not hold (PostgreSQL's text refuses NUL; the rest would only garble it).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# A shelf's reason is one line.
ANY_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


MINUTES = re.compile(r"[0-9]{1,6}")


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
        return bad_request("A note needs some text.")
    if CONTROL_CHARACTERS.search(text):
        return bad_request(
            "A note cannot contain control characters other than line breaks and tabs."
        )
    if len(text) > Acknowledgement.NOTE_MAX:
        return bad_request(f"A note has at most {Acknowledgement.NOTE_MAX} characters.")
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
        try:
            cameras.parse(camera)
        except cameras.BadCamera:
            return bad_request("camera must be a camera number")
        limit = settings.REALTIME_SHELF_MAX_MINUTES
        minutes = request.POST.get("minutes", "").strip()
        if MINUTES.fullmatch(minutes) is None or not 1 <= int(minutes) <= limit:
            return bad_request(f"minutes must be a whole number from 1 to {limit}")
        reason = request.POST.get("reason", "").strip()
        if ANY_CONTROL_CHARACTER.search(reason):
            return bad_request("A reason cannot contain control characters.")
        if len(reason) > Shelf.REASON_MAX:
            return bad_request(f"A reason has at most {Shelf.REASON_MAX} characters.")
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
        return bad_request("Select at least one violation.")
    if len(refs) > ACKNOWLEDGE_AT_ONCE:
        return bad_request(f"At most {ACKNOWLEDGE_AT_ONCE} violations at once.")
    wanted: dict[Kind, set[int]] = {}
    for ref in refs:
        match = VIOLATION_REF.fullmatch(ref)
        kind = kinds.knowing(slug=match[1]).by_slug.get(match[1]) if match else None
        if match is None or kind is None or int(match[2]) > queries.BIGINT_MAX:
            return bad_request(f"Not a violation: {ref[:60]!r} (expected KIND:ID, as ppe:12).")
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
