"""/api/v1/kinds/: the kinds of violation (each one detectors' table)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router
from ninja.responses import codes_4xx

from realtime.api.schemas import Error, KindOut
from realtime.violations import kinds

router = Router(tags=["kinds"])


@router.get("/", response={200: list[KindOut], codes_4xx: Error}, url_name="api-kinds")
def list_kinds(request: HttpRequest) -> list[KindOut]:
    """The kinds, in the console's order: `slug` is what `kind` takes everywhere."""
    return [KindOut(slug=k.slug, label=k.label, colour=k.colour) for k in kinds.registry()]
