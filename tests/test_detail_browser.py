"""A violation's detail as the operator sees it, in Debian's Chromium on a real Daphne: the
dialog over the live table and the page of its own, with a detectors' table whose columns
of its own are sometimes empty."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import Stack, insert_violation

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
GREY = "rgb(102, 102, 102)"  # .kind-badge's background before a kind's colour applies


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    stack = Stack.start("memory", database_url, None, tmp_path_factory.mktemp("detail"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator")


def background(page: Page, selector: str) -> str:
    colour: str = page.locator(selector).evaluate("e => getComputedStyle(e).backgroundColor")
    return colour


def test_the_dialogs_kind_badge_has_the_kinds_colour(stack, operator, page, pg) -> None:
    pk = insert_violation(pg, "violation_ppedetections", camera_id=4)
    browsing.log_in(page, stack.http, "/", "operator", browsing.PASSWORD)
    expect_live(page)
    in_row = background(page, f"#violation-ppe-{pk} .kind-badge")
    assert in_row != GREY
    page.locator(f"#violation-ppe-{pk} a.row-link").click()
    dialog = page.locator("#violation-dialog")
    expect(dialog).to_be_visible()
    assert background(page, "#violation-dialog .kind-badge") == in_row
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "detail-dialog.png")
