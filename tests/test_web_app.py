"""The console as an installable web app (issue 24, "A phone"): the manifest, a registered
service worker, and its offline page when the network or the server is gone; never a
stream's or a violation's data in its cache. Real Daphne, Debian's Chromium.
"""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import Stack, insert_violation, memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# What the service worker's caches hold, as paths.
CACHED_PATHS = """async () => {
  const paths = [];
  for (const name of await caches.keys()) {
    for (const request of await (await caches.open(name)).keys()) {
      paths.push(new URL(request.url).pathname);
    }
  }
  return paths.sort();
}"""


stack = memory_stack("web-app")


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator", superuser=True)


def test_the_manifest_names_an_installable_app_with_its_icons(stack: Stack) -> None:
    # Browsers fetch a manifest without cookies: it needs no login and holds nothing private.
    response = httpx.get(f"{stack.http}/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = response.json()
    assert manifest["name"] == "Safety violations"
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/" and manifest["scope"] == "/"
    sizes = set()
    for icon in manifest["icons"]:
        image = httpx.get(f"{stack.http}{icon['src']}")
        assert image.status_code == 200, icon
        if icon["type"] == "image/png":
            width, height = Image.open(io.BytesIO(image.content)).size
            assert f"{width}x{height}" == icon["sizes"]
            sizes.add(width)
    assert {192, 512} <= sizes  # what Chromium asks of an installable app
    # The login page has no icon of its own: browsers ask the root, and get the console's.
    favicon = httpx.get(f"{stack.http}/favicon.ico", follow_redirects=True)
    assert favicon.status_code == 200
    assert favicon.headers["content-type"].startswith("image/svg+xml")


def test_the_offline_page_needs_no_login_and_shows_nobodys_data(stack: Stack, pg, marker) -> None:
    insert_violation(pg, image=marker)
    response = httpx.get(f"{stack.http}/offline/")
    assert response.status_code == 200
    assert "Offline" in response.text
    assert marker not in response.text
    worker = httpx.get(f"{stack.http}/service-worker.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["cache-control"] == "no-cache"


def registered_worker(page: Page) -> str:
    return str(
        page.evaluate(
            "async () => (await navigator.serviceWorker.ready).active.scriptURL",
        )
    )


def test_the_console_registers_its_worker_which_caches_no_stream_and_no_violation(
    stack: Stack, operator: Any, page: Page, pg: Any, marker: str
) -> None:
    browsing.log_in(page, stack.http, "/", "operator", browsing.PASSWORD)
    assert registered_worker(page) == f"{stack.http}/service-worker.js"
    # Controlled from the next load on: the stream and a live row go through it.
    page.reload()
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    expect_live(page)
    insert_violation(pg, image=marker)
    expect(page.locator("#violation-rows tr.violation").first).to_contain_text(marker)
    page.goto(f"{stack.http}/history/")
    cached = page.evaluate(CACHED_PATHS)
    assert cached == sorted(
        [
            "/offline/",
            "/static/realtime/icons/icon.svg",
            "/static/realtime/offline.css",
            "/static/realtime/offline.js",
        ]
    ), cached


def test_offline_the_console_shows_its_offline_page_and_comes_back_by_itself(
    stack: Stack, operator: Any, page: Page
) -> None:
    browsing.log_in(page, stack.http, "/", "operator", browsing.PASSWORD)
    registered_worker(page)
    page.context.set_offline(True)
    page.reload()
    expect(page.locator("h1")).to_have_text("Offline")
    expect(page.locator("main")).to_contain_text("not live")
    page.screenshot(path=SCREENSHOTS / "offline-page.png")
    page.context.set_offline(False)
    expect_live(page)  # back on the live table without anyone touching it


def test_with_the_server_gone_the_console_says_offline_and_returns_when_it_is_back(
    stack: Stack, operator: Any, browser: Any
) -> None:
    # A wall display on a phone-sized screen: the server restarts under it.
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        browsing.log_in(page, stack.http, "/", "operator", browsing.PASSWORD)
        registered_worker(page)

        def while_down() -> None:
            page.reload()
            expect(page.locator("h1")).to_have_text("Offline")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=SCREENSHOTS / "offline-page-phone.png")

        stack.restart_server(down=while_down)
        expect_live(page)
        assert json.loads(page.evaluate("JSON.stringify(location.pathname)")) == "/"
    finally:
        context.close()
