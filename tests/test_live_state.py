"""The page says when it is not live (issue #15): real Daphne, real listen_notify, Redis,
PostgreSQL and Chromium.

A server that froze with its connections open, and a listener that stopped, both leave
the streams open and quiet; the page must not keep saying "Live".
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import Stack, insert_violation

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = browsing.PASSWORD
STALE = re.compile(r"^Stale: ")


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator", superuser=True)


@pytest.fixture
def memory_stack(database_url: str, tmp_path: Any) -> Iterator[Stack]:
    """Daphne with its listener inside: stopping the process stops everything."""
    stack = Stack.start("memory", database_url, None, tmp_path)
    try:
        yield stack
    finally:
        stack.server.popen.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        stack.stop()


@pytest.fixture
def redis_stack(database_url: str, redis_url: str, tmp_path: Any) -> Iterator[Stack]:
    stack = Stack.start("redis", database_url, redis_url, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


def state(page: Page) -> Any:
    return page.locator("#connection-state")


def test_a_frozen_server_is_stale_within_30_s_and_live_again_with_what_it_missed(
    memory_stack, operator, page, pg
) -> None:
    browsing.log_in(page, memory_stack.http, "/", "operator", PASSWORD)
    expect_live(page)
    memory_stack.server.popen.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    images = [f"/media/while-frozen-{n}.jpg" for n in range(2)]
    for image in images:
        insert_violation(pg, image=image)
    expect(state(page)).to_have_text(STALE, timeout=30_000)
    assert time.monotonic() - stopped < 30
    expect(state(page)).to_contain_text("nothing from the server for")
    assert page.title().startswith("Stale")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "stale-state.png", full_page=True)

    memory_stack.server.popen.send_signal(signal.SIGCONT)
    expect_live(page)
    for image in images:
        expect(page.locator("#violation-rows tr", has_text=image)).to_have_count(1, timeout=10_000)
    page.wait_for_timeout(1_000)  # the old stream's and the new one's deliveries are both in
    for image in images:
        expect(page.locator("#violation-rows tr", has_text=image)).to_have_count(1)
    assert not page.title().startswith("Stale")


def test_a_stopped_listener_shows_the_pipeline_not_live_and_its_return_live(
    redis_stack, operator, page, browser, pg
) -> None:
    browsing.log_in(page, redis_stack.http, "/", "operator", PASSWORD)
    expect_live(page)
    # A second screen, in German: it says why in its own language.
    german = browser.new_context(locale="de-DE").new_page()
    browsing.log_in(german, redis_stack.http, "/", "operator", PASSWORD)
    expect(state(german)).to_have_text("Live", timeout=20_000)
    [listener] = redis_stack.running_listeners()
    listener.stop()
    # The server notices once the listener's heartbeat is 20 s old, and tells the page at
    # once (not at the stream's next quiet heartbeat).
    expect(state(page)).to_have_text(STALE, timeout=35_000)
    expect(state(page)).to_contain_text(
        re.compile("no listener is forwarding changes|hears nothing from the listener")
    )
    expect(state(german)).to_have_text(
        re.compile(
            "^Veraltet: (kein Listener leitet Änderungen weiter"
            "|dieser Server hört nichts vom Listener)$"
        )
    )
    german.context.close()
    insert_violation(pg, image="/media/while-no-listener.jpg")

    redis_stack.start_listener().wait_for_log("listener active")
    expect(state(page)).to_have_text("Live", timeout=20_000)
    expect(
        page.locator("#violation-rows tr", has_text="/media/while-no-listener.jpg")
    ).to_have_count(1, timeout=10_000)
