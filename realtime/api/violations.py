"""/api/v1/violations/: the history's list (its filters, its order, keyset pages), one
violation with its notes and history, and what an operator does to it: through the same
readers and actions as the pages, so every screen hears of it exactly as from a page."""

from __future__ import annotations

from django.http import Http404, HttpRequest, QueryDict
from ninja import Router
from ninja.errors import HttpError
from ninja.params.functions import Query
from ninja.responses import codes_4xx

from realtime.api.auth import require_act, scope_of, username
from realtime.api.schemas import (
    AcknowledgeIn,
    Action,
    Error,
    NoteIn,
    Violation,
    ViolationDetail,
    ViolationPage,
)
from realtime.console import actions
from realtime.console.forms import NoteForm, first_error
from realtime.console.history import history_filter
from realtime.console.rows import Cursor, InvalidFilter, ViolationRow
from realtime.models import OperatorAction
from realtime.violations import kinds, queries

router = Router(tags=["violations"])

PAGE_MAX = 500


@router.get("/", response={200: ViolationPage, codes_4xx: Error}, url_name="api-violations")
def list_violations(
    request: HttpRequest,
    kind: str | None = None,
    camera: str | None = None,
    since: str | None = Query(
        None, alias="from", description="ISO date or date-time, plant time; included"
    ),
    until: str | None = Query(
        None, alias="to", description="ISO date (that whole day) or date-time; not included"
    ),
    acknowledged: str | None = Query(None, description="1: acknowledged only; 0: not"),
    cursor: str | None = Query(None, description="`next` of the previous page"),
    limit: int = Query(50, ge=1, le=PAGE_MAX),
) -> ViolationPage:
    """Violations newest first, as the history lists them, a page at a time."""
    given = {"kind": kind, "camera": camera, "from": since, "to": until}
    query = QueryDict(mutable=True)
    query.update({name: value for name, value in given.items() if value is not None})
    if acknowledged is not None:
        query["acknowledged"] = acknowledged
    try:
        row_filter = history_filter(query)
        after = Cursor.parse(cursor) if cursor else None
    except InvalidFilter as exc:
        # The history's words name its own `before`: here it is `cursor`.
        text = str(exc) if not cursor or "before" not in str(exc) else "cursor must be a `next`"
        raise HttpError(400, text) from exc
    found = queries.page(kinds.registry(), row_filter, after, limit, scope=scope_of(request))
    return ViolationPage(
        results=[Violation.of(row) for row in found.rows],
        next=None if found.next_cursor is None else str(found.next_cursor),
    )


def _violation(request: HttpRequest, kind: str, pk: int) -> ViolationRow:
    """The violation the path names, or a 404 (also for one of another site's camera)."""
    row = queries.named(kind, pk, scope=scope_of(request))
    if row is None:
        raise Http404("No such violation")
    return row


def _detail(row: ViolationRow) -> ViolationDetail:
    done = actions.history(row)
    return ViolationDetail(
        **Violation.of(row).dict(),
        notes=[Action.of(a) for a in done if a.action == OperatorAction.NOTE],
        history=[Action.of(a) for a in done],
    )


DETAIL = {200: ViolationDetail, codes_4xx: Error}


@router.get("/{kind}/{id}/", response=DETAIL, url_name="api-violation")
def get_violation(request: HttpRequest, kind: str, id: int) -> ViolationDetail:
    """One violation, with its notes and everything done to it."""
    return _detail(_violation(request, kind, id))


def _note(text: str) -> str:
    form = NoteForm({"text": text})
    if not form.is_valid():
        raise HttpError(400, first_error(form))
    note: str = form.cleaned_data["text"]
    return note


@router.post("/{kind}/{id}/acknowledge/", response=DETAIL, url_name="api-acknowledge")
def acknowledge(
    request: HttpRequest, kind: str, id: int, body: AcknowledgeIn | None = None
) -> ViolationDetail:
    """Acknowledges it (once: the first acknowledgement counts), with a `note` if given."""
    require_act(request)
    row = _violation(request, kind, id)
    note = body.note if body is not None else None
    if note is not None and note.strip():
        actions.add_note(username(request), row, _note(note))
    else:
        actions.acknowledge(username(request), [row])
    return _detail(_violation(request, kind, id))


@router.post("/{kind}/{id}/notes/", response=DETAIL, url_name="api-add-note")
def add_note(request: HttpRequest, kind: str, id: int, body: NoteIn) -> ViolationDetail:
    """A note on it (acknowledging it first if nobody has)."""
    require_act(request)
    row = _violation(request, kind, id)
    actions.add_note(username(request), row, _note(body.text))
    return _detail(_violation(request, kind, id))
