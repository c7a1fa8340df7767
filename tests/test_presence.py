"""Who is watching (issue 25, "Nobody watching"): the people with a live table open, for
which sites, known to every process through the database and shown on the console.

Real Daphne, real Chromium. North (cameras 1-5) is alice's and carol's, South (6-10)
bob's. A live table opened is watching within seconds, and stops when its tab closes; a
token's stream is a program, not a person; a killed server's rows expire.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import Browser, FloatRect, Page, expect

from realtime.alerts.presence import PRESENCE_EVERY, PRESENCE_STALE, is_watched, watchers
from realtime.models import ApiToken
from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import Stack, memory_stack
from tests.test_presence_rows import NORTH, SOUTH, plant

__all__ = ["plant"]  # the fixture: the users and their sites

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

stack = memory_stack("presence")


def eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` holds; fails after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - start


def one_line(page: Page, container: str) -> bool:
    """Whether the visible items of `container` are on one line (their middles level)."""
    middles = page.locator(f"{container} > *:not([hidden])").evaluate_all(
        "items => items.map((e) => { const r = e.getBoundingClientRect();"
        " return r.top + r.height / 2; })"
    )
    return bool(max(middles) - min(middles) < 4)


def console(browser: Browser, stack: Stack, username: str, locale: str = "en-US") -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale=locale).new_page()
    browsing.log_in(page, stack.http, "/", username, browsing.PASSWORD)
    expect_live(page)
    return page


def test_a_live_table_is_watching_its_sites_on_every_console_until_its_tab_closes(
    stack: Stack, plant: dict[str, Any], browser: Browser, page: Page
) -> None:
    assert not is_watched(3) and not is_watched(None) and watchers(None) == []

    alice = console(browser, stack, "alice")
    took = eventually(lambda: is_watched(3), PRESENCE_EVERY + 2, "alice watching camera 3")
    print(f"alice's live table watching after {took:.1f} s")
    assert not is_watched(8), "South is not alice's"
    assert not is_watched(None), "a violation without a camera: only for every camera's"
    assert watchers(NORTH) == ["alice"] and watchers(SOUTH) == []

    # carol (North) sees alice and herself at once; alice sees carol within a refresh.
    browsing.log_in(page, stack.http, "/", "carol", browsing.PASSWORD)
    expect_live(page)
    watching = page.locator("#watching")
    expect(watching).to_have_text("Watching: 2 (alice, carol)")
    expect(alice.locator("#watching")).to_have_text("Watching: 2 (alice, carol)", timeout=12_000)
    bob = console(browser, stack, "bob", locale="de-DE")  # in German
    expect(bob.locator("#watching")).to_have_text("Am Bildschirm: 1 (bob)")
    eventually(lambda: is_watched(8), PRESENCE_EVERY + 2, "bob watching camera 8")
    page.wait_for_timeout(6_000)  # a refresh or more later: still only North's
    expect(watching).to_have_text("Watching: 2 (alice, carol)")
    expect(bob.locator("#watching")).to_have_text("Am Bildschirm: 1 (bob)")

    # The toolbar and the actions' bar stay one line each at 1280x800, in German too.
    page.screenshot(path=SCREENSHOTS / "watching-console.png")
    for console_page, name in ((page, "watching-bars"), (bob, "watching-bars-de")):
        top = FloatRect(x=0, y=0, width=1280, height=200)
        console_page.screenshot(path=SCREENSHOTS / f"{name}.png", clip=top)
        for bar in (".live-toolbar", ".live-bar"):
            assert one_line(console_page, bar), f"{name}: {bar} wraps"
        assert console_page.evaluate("document.documentElement.scrollWidth") <= 1280

    # alice closes her tab: gone from carol's console and from the database.
    alice.context.close()
    took = eventually(
        lambda: watchers(NORTH) == ["carol"], PRESENCE_STALE + 5, "alice gone after her tab"
    )
    print(f"alice's closed tab gone after {took:.1f} s")
    expect(watching).to_have_text("Watching: 1 (carol)", timeout=12_000)
    assert is_watched(3), "carol still watches North"

    page.goto("about:blank")
    bob.context.close()
    eventually(lambda: not is_watched(3) and not is_watched(8), PRESENCE_STALE + 5, "nobody left")


def session_of(stack: Stack, username: str) -> str:
    """A session cookie's value, from the server's own login page (its secret key signs it)."""
    with httpx.Client(base_url=stack.http) as client:
        client.get("/accounts/login/")
        form = {
            "username": username,
            "password": browsing.PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        }
        assert client.post("/accounts/login/", data=form).status_code == 302
        return str(client.cookies[settings.SESSION_COOKIE_NAME])


@pytest.fixture
def robot(stack: Stack, plant: dict[str, Any]) -> dict[str, str]:
    """A program of North's (a token), and sessions of it and of alice."""
    program = browsing.browser_user("robot")
    call_command("sites", "grant", "North", "robot", stdout=io.StringIO())
    return {
        "token": ApiToken.issue(program),
        "robot": session_of(stack, "robot"),
        "alice": session_of(stack, "alice"),
    }


class OpenStream:
    """An SSE stream held open (read up to its stream-open, then left alone)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self.response = self.client.send(
            self.client.build_request("GET", url, **kwargs), stream=True
        )
        assert self.response.status_code == 200, self.response.read()
        # Kept: a reader dropped (collected) closes the connection.
        self.lines = self.response.iter_lines()
        assert any(line == "event: stream-open" for line in self.lines)

    def close(self) -> None:
        self.response.close()
        self.client.close()


def test_a_tokens_stream_is_nobody_watching(stack: Stack, robot: dict[str, str]) -> None:
    rows = f"{stack.http}/events/violations/rows/"
    cookie = settings.SESSION_COOKIE_NAME
    streams = [
        # The live table's rows, for a program: nobody at a screen.
        OpenStream(rows, headers={"Authorization": f"Bearer {robot['token']}"}),
        # A person's, but the admin changelist's rows and the JSON: not the live table.
        OpenStream(f"{rows}?layout=admin", cookies={cookie: robot["robot"]}),
        OpenStream(f"{stack.http}/events/violations/", cookies={cookie: robot["robot"]}),
    ]
    try:
        # Opened after them, a person's live table: once it is known, so would they be.
        streams.append(OpenStream(rows, cookies={cookie: robot["alice"]}))
        eventually(lambda: is_watched(3), PRESENCE_EVERY + 2, "alice's session stream")
        assert watchers(None) == ["alice"]
    finally:
        for stream in streams:
            stream.close()


def test_a_killed_servers_watchers_expire(
    stack: Stack, plant: dict[str, Any], browser: Browser
) -> None:
    from realtime.alerts.models import Presence

    alice = console(browser, stack, "alice")
    try:
        eventually(lambda: is_watched(3), PRESENCE_EVERY + 2, "alice watching camera 3")
        stack.server.kill()  # SIGKILL: it deletes nothing
        assert Presence.objects.filter(username="alice").exists()
        took = eventually(lambda: not is_watched(3), PRESENCE_STALE + 2, "the killed one gone")
        print(f"a killed server's watcher gone after {took:.1f} s")
        assert took > PRESENCE_STALE - PRESENCE_EVERY - 2, "not gone before it is stale"
    finally:
        alice.context.close()
        stack.restart_server()
