"""A violation's detail as the operator sees it, in Debian's Chromium on a real Daphne: the
dialog over the live table and the page of its own, with a detectors' table whose columns
of its own are sometimes empty."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import insert_violation, memory_stack
from tests.history_rows import insert

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
GREY = "rgb(102, 102, 102)"  # .kind-badge's background before a kind's colour applies


stack = memory_stack("detail")


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


def test_empty_columns_of_the_detectors_are_left_out(stack, operator, page, pg, fire_kind) -> None:
    pg.execute("SELECT realtime_watch_v5('violation_firedetections')")  # live rows too
    empty = insert(pg, "fire", "2026-11-30", "08:00:00", 9, temperature=None, zone=None)
    some = insert(pg, "fire", "2026-11-30", "08:00:01", 9, temperature=None, zone="Hall B")
    browsing.log_in(page, stack.http, "/?kind=fire", "operator", browsing.PASSWORD)
    expect_live(page)
    live = insert(pg, "fire", "2026-11-30", "08:00:02", 9, temperature=None, zone=None)
    expect(page.locator(f"#violation-fire-{live}")).to_be_visible(timeout=5_000)
    for pk in (empty, some, live):
        expect(page.locator(f"#violation-fire-{pk}")).not_to_contain_text("temperature")

    dialog = page.locator("#violation-dialog")
    for pk, shown, without in [
        (empty, [], "Without a value: temperature, zone, tags."),
        (some, ["zone"], "Without a value: temperature, tags."),
    ]:
        page.locator(f"#violation-fire-{pk} a.row-link").click()
        expect(dialog).to_be_visible()
        expect(dialog.locator("#detail-title")).to_contain_text(f"#{pk}")
        names = dialog.locator(".detail-columns th").all_text_contents()
        assert [n for n in names if n in ("temperature", "zone", "tags")] == shown
        expect(dialog.locator(".detail-empty")).to_have_text(without)
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

    # The violation's own page, reached from the history.
    page.goto(f"{stack.http}/history/?kind=fire")
    expect(page.locator(f"#violation-fire-{empty}")).not_to_contain_text("temperature")
    page.locator(f"#violation-fire-{some} a.row-link").click()
    expect(page.locator(".detail-columns td.detail-zone")).to_have_text("Hall B")
    expect(page.locator(".detail-columns")).not_to_contain_text("temperature")
    expect(page.locator(".detail-empty")).to_have_text("Without a value: temperature, tags.")
