"""/api/v1/shelves/: the cameras shelved now, and shelving one (realtime.console.shelves)."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from ninja import Router, Status
from ninja.errors import HttpError
from ninja.responses import codes_4xx

from realtime.access import scopes
from realtime.api.auth import require_act, scope_of, username
from realtime.api.schemas import Error, ShelfIn, ShelfOut
from realtime.console import shelves
from realtime.console.forms import ShelfForm, first_error

router = Router(tags=["shelves"])


@router.get("/", response={200: list[ShelfOut], codes_4xx: Error}, url_name="api-shelves")
def list_shelves(request: HttpRequest) -> list[ShelfOut]:
    """The shelves in force now of the cameras one may see, the one ending first first."""
    return [ShelfOut.of(shelf) for shelf in shelves.active(scope_of(request))]


@router.post("/", response={201: ShelfOut, codes_4xx: Error, 503: Error}, url_name="api-shelve")
def shelve(request: HttpRequest, body: ShelfIn) -> Status[ShelfOut]:
    """Shelves a camera for `minutes` from now (a shelf it has ends here); every screen
    hears of it at once."""
    require_act(request)
    form = ShelfForm(
        {"camera": str(body.camera), "minutes": str(body.minutes), "reason": body.reason}
    )
    if not form.is_valid():
        raise HttpError(400, first_error(form))
    camera = form.cleaned_data["camera"]
    if not scopes.covers(scope_of(request), camera):
        raise Http404("No such camera")  # one of a site the caller is not given
    try:
        shelf = shelves.shelve(
            username(request), camera, form.cleaned_data["minutes"], form.cleaned_data["reason"]
        )
    except shelves.UnknownTimeZone as exc:
        raise HttpError(503, f"Cannot shelve: {exc}.") from exc
    return Status(201, ShelfOut.of(shelf))
