"""Driving Debian's Chromium with Playwright: the browser and page fixtures, logging in.

Screenshots of every page test are saved under artifacts/screenshots/ (docs/how-to/develop.md).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

# Counts play() calls instead of making noise; resolves as a browser that allows sound.
SPY_ON_PLAY = """
window.__plays = 0;
HTMLMediaElement.prototype.play = function () { window.__plays += 1; return Promise.resolve(); };
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (.ci/run installs it)"
    # Playwright's sync API keeps an event loop running in this thread, which Django takes
    # for async code; the tests' ORM calls are plain synchronous ones (Django's documented
    # escape hatch for exactly this case).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(SPY_ON_PLAY)
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()
    assert not refused, f"the page broke its own Content-Security-Policy: {refused}"


# The password of the users browser tests log in as.
PASSWORD = "a-long-password-1"


def browser_user(username: str, *, superuser: bool = False) -> Any:
    """A user who logs in through the real login page: the password hashed as the server
    (production settings, not the tests' fast hasher) can check it."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    users = get_user_model().objects
    user = users.create_superuser(username, "") if superuser else users.create_user(username)
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save()
    return user


def log_in(page: Page, base_url: str, path: str, username: str, password: str) -> None:
    page.goto(f"{base_url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(re.escape(base_url + path.split("?")[0])))


def expect_live(page: Page) -> None:
    expect(page.locator("#connection-state")).to_have_text("Live", timeout=10_000)
