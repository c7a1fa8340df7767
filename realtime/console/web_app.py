"""The console as an installable web app: its manifest, its service worker, its offline page.

The service worker answers one question only: what a screen shows when the server cannot
be reached. It serves the offline page (and the few static files the page needs) when a
navigation fails, and leaves every other request to the network: the streams, the
fragments, the images and the violations' data are never cached, so an installed console
shows nothing stale and nothing stays on a shared screen's disk.
"""

from __future__ import annotations

import hashlib
import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

THEME_COLOUR = "#264b5d"  # the admin's header, which the console's title bar is
ICON_SIZES = (192, 512)


def precached() -> list[str]:
    """What the offline page needs, and nothing else: the worker keeps these."""
    return [
        reverse("offline"),
        static("realtime/offline.css"),
        static("realtime/offline.js"),
        static("realtime/icons/icon.svg"),
    ]


@require_GET
def manifest(request: HttpRequest) -> JsonResponse:
    icons = [
        {
            "src": static(f"realtime/icons/icon-{size}.png"),
            "sizes": f"{size}x{size}",
            "type": "image/png",
        }
        for size in ICON_SIZES
    ]
    icons.append(
        {
            "src": static("realtime/icons/maskable-512.png"),
            "sizes": "512x512",
            "type": "image/png",
            "purpose": "maskable",
        }
    )
    icons.append(
        {"src": static("realtime/icons/icon.svg"), "sizes": "any", "type": "image/svg+xml"}
    )
    response = JsonResponse(
        {
            "name": _("Safety violations"),
            "short_name": _("Violations"),
            "description": _("The live table of safety violations"),
            "lang": translation.get_language(),
            "id": "/",
            "start_url": reverse("dashboard"),
            "scope": "/",
            "display": "standalone",
            "background_color": "#ffffff",
            "theme_color": THEME_COLOUR,
            "icons": icons,
        },
        content_type="application/manifest+json",
    )
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """/service-worker.js, from the root so that its scope is the whole console. Its cache's
    name changes with what it keeps, so a deployment with new static files replaces it."""
    urls = precached()
    # The language too: the offline page is kept in the user's, and a worker fetched in
    # another (the user changed it) differs, so the browser installs it and keeps that one.
    version = hashlib.sha256(json.dumps([urls, translation.get_language()]).encode()).hexdigest()
    version = version[:12]
    script = render_to_string(
        "realtime/service-worker.js",
        {
            "cache_name": f"console-offline-{version}",
            "precached": json.dumps(urls),
            "offline_url": json.dumps(reverse("offline")),
        },
    )
    response = HttpResponse(script, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # browsers check it on every start
    return response


@require_GET
def offline(request: HttpRequest) -> HttpResponse:
    """What the worker shows when the server cannot be reached: no login, nothing of anyone's."""
    response = render(request, "realtime/offline.html")
    response["Cache-Control"] = "no-cache"
    return response
