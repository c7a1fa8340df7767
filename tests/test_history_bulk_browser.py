"""/history/ in a real browser (Debian's Chromium, a real Daphne): each header stands over
its column, measured by where the browser draws them, and the rows' checkboxes acknowledge
exactly the rows checked, asking first for more than ten.

Screenshots are saved under artifacts/screenshots/ (history-desk.png, history-phone.png).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS
from tests.helpers import Stack, insert_violation, memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Each cell's class and the header that must stand over it.
HEADERS = {
    "field-kind": "Kind",
    "field-camera": "Camera",
    "field-date": "Date",
    "field-time": "Time",
    "field-image": "Image",
    "field-status": "Status",
}


stack = memory_stack("history-bulk")


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator")


def log_in(page: Page, stack: Stack, path: str = "/history/") -> None:
    browsing.log_in(page, stack.http, path, "operator", browsing.PASSWORD)


def some_rows(pg: Any, n: int, camera: int = 3) -> list[int]:
    tables = ["violation_humandetections", "violation_ppedetections", "violation_lotodetections"]
    return [
        insert_violation(pg, tables[i % 3], camera_id=camera, image=f"/media/cam{camera}/{i}.jpg")
        for i in range(n)
    ]


def acknowledged(pg: Any) -> set[tuple[str, int]]:
    found = pg.execute("SELECT table_name, violation_id FROM realtime_acknowledgement").fetchall()
    return {(table, int(pk)) for table, pk in found}


def header_over(page: Page) -> list[tuple[str, str]]:
    """Each body cell's class and the text of the header drawn above its centre."""
    pairs: list[tuple[str, str]] = page.evaluate(
        """() => {
          const heads = [...document.querySelectorAll('#result_list thead th')].map(th => {
            const box = th.getBoundingClientRect();
            return {left: box.left, right: box.right, text: th.textContent.trim()};
          });
          const pairs = [];
          for (const td of document.querySelectorAll('#violation-rows tr.violation td')) {
            const box = td.getBoundingClientRect();
            const centre = (box.left + box.right) / 2;
            const over = heads.filter(h => h.left <= centre && centre < h.right);
            const field = [...td.classList].find(c => c.startsWith('field-'));
            pairs.push([field, over.length === 1 ? over[0].text : '(' + over.length + ')']);
          }
          return pairs;
        }"""
    )
    return pairs


def test_each_header_stands_over_its_column(stack, operator, page, pg) -> None:
    rows = some_rows(pg, 6)
    note = "the camera was cleaned; nobody in the zone"
    with pg.transaction():
        pg.execute(
            "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
            " acknowledged_at, note, noted_by, noted_at)"
            " VALUES ('violation_humandetections', %s, 'anna', now(), %s, 'anna', now())",
            [rows[0], note],
        )
    log_in(page, stack)
    expect(page.locator("#violation-rows tr.violation")).to_have_count(6)
    pairs = header_over(page)
    assert len(pairs) == 6 * 7
    for field, header in pairs:
        if field == "field-select":
            assert header == "Select", "the checkboxes' column has a header of its own"
        else:
            assert header == HEADERS[field], (field, header)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "history-desk.png")


def test_the_history_on_a_phone(stack, operator, browser: Browser, pg) -> None:
    some_rows(pg, 4)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in(page, stack)
        expect(page.locator("#violation-rows tr.violation")).to_have_count(4)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "history-phone.png", full_page=True)
        # The chart scrolls in its own box; the page does not scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # Every row of the page can be selected at once here too (no header on a phone).
        select_all = page.get_by_label("Select every unacknowledged violation on this page")
        expect(select_all).to_be_visible()
        select_all.check()
        expect(page.locator("#acknowledge-selected")).to_have_text("Acknowledge selected (4)")
    finally:
        context.close()


def test_the_checked_rows_and_only_they_are_acknowledged(stack, operator, page, pg) -> None:
    rows = some_rows(pg, 5)
    log_in(page, stack)
    button = page.locator("#acknowledge-selected")
    expect(button).to_be_disabled()
    chosen = [rows[1], rows[3]]  # a ppe and a human row: the kinds alternate
    for row_id, table in zip(chosen, ("ppe", "human"), strict=True):
        page.locator(f"#violation-{table}-{row_id} input.select-violation").check()
    expect(button).to_have_text("Acknowledge selected (2)")
    button.click()
    expect(page.locator(".messagelist")).to_contain_text("Acknowledged 2 violations.")
    assert acknowledged(pg) == {
        ("violation_ppedetections", rows[1]),
        ("violation_humandetections", rows[3]),
    }
    expect(page.locator("#violation-rows tr.violation.acknowledged")).to_have_count(2)
    expect(page.locator(f"#violation-ppe-{rows[1]}")).to_contain_text("Acknowledged by operator")


def test_more_than_ten_at_once_asks_first_naming_the_number(stack, operator, page, pg) -> None:
    some_rows(pg, 12)
    log_in(page, stack)
    page.locator("#select-all").check()
    button = page.locator("#acknowledge-selected")
    expect(button).to_have_text("Acknowledge selected (12)")
    button.click()
    dialog = page.locator("#bulk-confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Acknowledge these 12 violations?")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "history-confirm.png")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert acknowledged(pg) == set()
    # One fewer: still more than ten, asked again; then confirmed.
    page.locator("#violation-rows input.select-violation").first.uncheck()
    expect(button).to_have_text("Acknowledge selected (11)")
    button.click()
    expect(dialog).to_contain_text("Acknowledge these 11 violations?")
    dialog.get_by_role("button", name="Acknowledge 11").click()
    expect(page.locator(".messagelist")).to_contain_text("Acknowledged 11 violations.")
    assert len(acknowledged(pg)) == 11
