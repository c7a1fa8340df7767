"""The API's one NinjaAPI: its routers, its docs page (assets served from static/vendor/, under
the site's Content-Security-Policy), and errors as JSON {"detail": "..."} with a 4xx."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import NinjaAPI
from ninja.errors import ValidationError
from ninja.openapi.docs import Swagger

from realtime.api import changes, kinds, shelves, violations
from realtime.api.auth import AUTH

SWAGGER_UI = "vendor/swagger-ui-5.35.0"


class VendoredSwagger(Swagger):
    """Ninja's Swagger page with swagger-ui from static/vendor/ (no CDN) and its start-up
    in a static script (no inline script: the CSP allows none without a nonce)."""

    template = "realtime/api_docs.html"

    def render_page(self, request: HttpRequest, api: Any, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {"settings": self.settings, "api": api, "swagger_ui": SWAGGER_UI}
        return render(request, self.template, context)


class Api(NinjaAPI):
    """Operations named by their functions (list_violations, acknowledge): the names a
    client generated from the schema gives its functions."""

    def get_openapi_operation_id(self, operation: Any) -> str:
        name: str = operation.view_func.__name__
        return name


api = Api(
    title="Safety violations",
    version="1",
    description="Violations, their acknowledgements, shelves and the stream's changes."
    " Authenticate with `Authorization: Bearer <token>` (`manage.py issue_token`; `--scope"
    " act` to acknowledge, add notes and shelve) or a login's session (POSTs then need the"
    " CSRF token in `X-CSRFToken`).",
    auth=AUTH,
    urls_namespace="api-v1",
    docs=VendoredSwagger(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
api.add_router("/violations/", violations.router)
api.add_router("/shelves/", shelves.router)
api.add_router("/kinds/", kinds.router)
api.add_router("/changes/", changes.router)


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """A 400 that names the first thing wrong, as every other refusal does (ninja's is a 422
    with a list)."""
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = first.get("msg", "invalid request")
    return api.create_response(request, {"detail": f"{where}: {message}"}, status=400)
