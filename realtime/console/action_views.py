"""What an operator does from the console (POST, with a login): acknowledge, note, shelve,
end a shelf. Each validates with a form (realtime.console.forms), acts through
realtime.console.actions or realtime.console.shelves, and answers with what is now drawn."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from realtime.access import scopes
from realtime.access.auth import accepts_token
from realtime.console import actions, history, shelves
from realtime.console.forms import AcknowledgeManyForm, NoteForm, ShelfForm, first_error
from realtime.console.rows import (
    ViolationRow,
    render_row,
)
from realtime.console.views import bad_request
from realtime.models import Shelf
from realtime.violations import queries
from realtime.violations.kinds import Kind


@login_required
@require_POST
def acknowledge(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """An operator acknowledges a violation, with a note if `text` is given; every screen
    re-draws the row (a STATE event)."""
    row = _violation(request, kind, pk)
    if request.POST.get("text", "").strip():
        form = NoteForm(request.POST)
        if not form.is_valid():
            return bad_request(first_error(form))
        actions.add_note(request.user.get_username(), row, form.cleaned_data["text"])
    else:
        actions.acknowledge(request.user.get_username(), [row])
    return _answer(request, kind, pk)


def _answer(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """The violation as it now is: its detail when the detail asked (`answer=detail`), else
    its row of the live table."""
    row = _violation(request, kind, pk)
    if request.POST.get("answer") == "detail":
        return history.render_detail(request, row, fragment=True)
    return HttpResponse(render_row(row))


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
    form = NoteForm(request.POST)
    if not form.is_valid():
        return bad_request(first_error(form))
    actions.add_note(request.user.get_username(), row, form.cleaned_data["text"])
    return _answer(request, kind, pk)


@login_required
@require_POST
def undo(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """Takes back one's own acknowledgement within REALTIME_UNDO_SECONDS; every screen
    re-draws the row. Someone else's, or an older one, is a 409 that says why."""
    row = _violation(request, kind, pk)
    if not actions.undo(request.user.get_username(), [row]):
        return _cannot_undo(row)
    return _answer(request, kind, pk)


def _cannot_shelve(exc: Exception) -> HttpResponse:
    text = _("Cannot shelve: %(why)s.") % {"why": exc}
    return HttpResponse(text, status=503, content_type="text/plain")


def _cannot_undo(row: ViolationRow) -> HttpResponse:
    if not row.acknowledged:
        message = _("It is not acknowledged.")
    else:
        message = _("Only %(who)s can take it back, within %(minutes)s minutes.") % {
            "who": row.acknowledged_by or _("who acknowledged it"),
            "minutes": f"{actions.undo_window().total_seconds() / 60:g}",
        }
    return HttpResponse(message, status=409, content_type="text/plain")


@login_required
@require_POST
def undo_many(request: HttpRequest) -> HttpResponse:
    """Takes back several of one's own recent acknowledgements (`violation=KIND:ID`,
    repeated, as for acknowledge_many); the others are left as they are. Answers with the
    rows as they now are."""
    return _many(request, actions.undo)


@login_required
@require_POST
def shelve_camera(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """Shelves the camera of a violation (from its detail): `minutes`, an optional `reason`.
    Answers with the detail as it now is; every screen hears of the shelf at once."""
    row = _violation(request, kind, pk)
    if row.camera_id is None:
        return bad_request(_("This violation has no camera to shelve."))
    form = ShelfForm({**request.POST.dict(), "camera": str(row.camera_id)})
    if not form.is_valid():
        return bad_request(first_error(form))
    try:
        shelves.shelve(
            request.user.get_username(),
            row.camera_id,
            form.cleaned_data["minutes"],
            form.cleaned_data["reason"],
        )
    except shelves.UnknownTimeZone as exc:
        return _cannot_shelve(exc)
    return history.render_detail(request, _violation(request, kind, pk), fragment=True)


@accepts_token
@login_required
@require_http_methods(["GET", "POST"])
def shelf_list(request: HttpRequest) -> HttpResponse:
    """GET: the cameras shelved now (the page's panel; a token may read it). POST `camera`,
    `minutes` and an optional `reason` (a login, as every action): shelves a camera from
    now, and every screen hears of it at once. Answers with the panel as it now is."""
    if request.method == "POST":
        form = ShelfForm(request.POST)
        if not form.is_valid():
            return bad_request(first_error(form))
        camera, minutes = form.cleaned_data["camera"], form.cleaned_data["minutes"]
        if not scopes.covers(scopes.of_user(request.user), camera):
            raise Http404("No such camera")  # one of a site the user is not given
        try:
            shelves.shelve(
                request.user.get_username(), camera, minutes, form.cleaned_data["reason"]
            )
        except shelves.UnknownTimeZone as exc:
            return _cannot_shelve(exc)
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


@login_required
@require_POST
def acknowledge_many(request: HttpRequest) -> HttpResponse:
    """Several at once (the page's selected or visible rows): `violation=KIND:ID`, repeated.

    Answers with the rows as they now are; every screen re-draws them (STATE events).
    Violations that no longer exist, or that the user may not see, are left out (and
    nothing is done to them); a malformed one, or one of an unknown kind, is a 400,
    and then nothing is acknowledged.
    """
    return _many(request, actions.acknowledge)


def _many(request: HttpRequest, act: Callable[[str, list[ViolationRow]], int]) -> HttpResponse:
    form = AcknowledgeManyForm(request.POST)
    if not form.is_valid():
        return bad_request(first_error(form))
    wanted: dict[Kind, set[int]] = form.cleaned_data["violation"]
    scope = scopes.of_user(request.user)
    act(request.user.get_username(), _rows(wanted, scope))
    return HttpResponse("".join(render_row(row) for row in _rows(wanted, scope)))


@login_required
@require_POST
def history_acknowledge_many(request: HttpRequest) -> HttpResponse:
    """The history's form: the same `violation=KIND:ID` and the same checks as
    acknowledge_many, then back to the page it came from (`next`), which says what was
    done or, with nothing done, what was wrong."""
    form = AcknowledgeManyForm(request.POST)
    if form.is_valid():
        wanted: dict[Kind, set[int]] = form.cleaned_data["violation"]
        rows = _rows(wanted, scopes.of_user(request.user))
        done = actions.acknowledge(request.user.get_username(), rows)
        selected = sum(len(ids) for ids in wanted.values())
        text = ngettext(
            "Acknowledged %(done)s violation.", "Acknowledged %(done)s violations.", done
        ) % {"done": done}
        if done < selected:
            text = _(
                "Acknowledged %(done)s of the %(selected)s selected: the others were already"
                " acknowledged or are no longer there."
            ) % {"done": done, "selected": selected}
        messages.success(request, text)
    else:
        messages.error(request, _("Nothing acknowledged: %(why)s") % {"why": first_error(form)})
    back = request.POST.get("next", "")
    if not back.startswith(reverse("history")) or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("history")
    return HttpResponseRedirect(back, status=303)


def _rows(wanted: dict[Kind, set[int]], scope: scopes.Scope) -> list[ViolationRow]:
    """Those of `wanted` that exist and are of the scope's cameras, as they now are."""
    return [
        row for kind, ids in wanted.items() for row in queries.many(kind, sorted(ids), scope=scope)
    ]
