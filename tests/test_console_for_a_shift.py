"""The console for a whole shift (issue 24): the rows an operator watches are in view, one
line each, on a desk (1280x800), a wall (1920x1080) and a phone (390x844). Real Chromium,
real Daphne, a database with 5,000 rows per kind, some acknowledged with notes, a kind with
columns of its own. Screenshots: artifacts/screenshots/shift-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS
from tests.helpers import Stack, memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROWS_PER_KIND = 5_000
TABLES = ("violation_humandetections", "violation_lotodetections", "violation_ppedetections")

# Rows whose bottom edge is inside the window: wholly in view.
ROWS_IN_VIEW = """() => [...document.querySelectorAll('#violation-rows tr.violation')]
  .filter((tr) => { const r = tr.getBoundingClientRect();
                    return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; })
  .length"""


stack = memory_stack("shift")


@pytest.fixture
def a_plants_rows(pg: Any) -> Iterator[None]:
    """5,000 violations per kind over the last days, fractional times, long image paths,
    the detectors' extra columns (some NULL), the newest acknowledged with notes."""
    pg.execute("ALTER TABLE violation_ppedetections ADD COLUMN zone text, ADD COLUMN score real")
    try:
        for n, table in enumerate(TABLES):
            pg.execute(
                f"INSERT INTO {table} (camera_id, violation_date, violation_time,"
                " violation_image)"
                " SELECT 1 + i %% 40, (t)::date, (t)::time, '/media/cam' || (1 + i %% 40)"
                " || '/2026/12/a-rather-long-file-name-from-the-camera-system-' || i || '.jpg'"
                " FROM (SELECT i, localtimestamp - make_interval(secs => i * 37.25 + %s) AS t"
                "       FROM generate_series(1, %s) AS i) s",
                [n * 11.5, ROWS_PER_KIND],
            )
        pg.execute(
            "UPDATE violation_ppedetections SET zone = 'Hall B, north gate', score = 0.93"
            " WHERE id % 3 = 0"
        )
        pg.execute(
            "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
            " acknowledged_at, note, noted_by, noted_at)"
            " SELECT 'violation_humandetections', id, 'anna', now(),"
            " 'Contractor escorted out of the restricted zone, gate 3 closed again', 'anna', now()"
            " FROM violation_humandetections ORDER BY violation_date DESC, violation_time DESC"
            " LIMIT 6"
        )
        yield
    finally:
        pg.execute("ALTER TABLE violation_ppedetections DROP COLUMN zone, DROP COLUMN score")


def open_console(
    browser: Browser, stack: Stack, width: int, height: int, scheme: str = "light"
) -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    page = context.new_page()
    browsing.log_in(page, stack.http, "/", "wall", browsing.PASSWORD)
    # The server has just taken 15,000 changes through its pipeline: on a loaded machine
    # the stream may take longer than usual to open (what is measured here is the layout).
    expect(page.locator("#connection-state")).to_have_text("Live", timeout=30_000)
    expect(page.locator("#violation-rows tr.violation")).to_have_count(50)  # one page
    return page


@pytest.mark.parametrize(
    ("width", "height", "at_least", "scheme"),
    [(1280, 800, 15, "light"), (1920, 1080, 25, "dark")],
    ids=["desk", "wall-at-night"],
)
def test_the_rows_are_in_view_one_line_each(
    stack: Stack,
    browser: Browser,
    a_plants_rows: None,
    width: int,
    height: int,
    at_least: int,
    scheme: str,
) -> None:
    browsing.browser_user("wall")
    page = open_console(browser, stack, width, height, scheme)
    try:
        page.screenshot(path=SCREENSHOTS / f"shift-{width}x{height}.png")
        in_view = page.evaluate(ROWS_IN_VIEW)
        assert in_view >= at_least, f"{in_view} rows wholly in view at {width}x{height}"
        # One line per violation: every row as tall as the first, acknowledged ones too.
        heights = page.locator("#violation-rows tr.violation").evaluate_all(
            "rows => rows.map((tr) => tr.getBoundingClientRect().height)"
        )
        assert max(heights) <= 40, f"rows of {max(heights):.0f} px"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # The counters on one line, the chart folded until asked for and then readable.
        counters = page.locator("#counters .counter").evaluate_all(
            "items => new Set(items.map((li) => Math.round(li.getBoundingClientRect().top))).size"
        )
        assert counters == 1, "the counters wrap onto another line"
        expect(page.locator("#trend")).to_be_hidden()
        page.get_by_text("Trend, last 24 hours").click()
        expect(page.locator("#trend")).to_be_visible()
        smallest = page.locator("#trend .trend-tick").evaluate_all(
            "ticks => Math.min(...ticks.map((t) => t.getBoundingClientRect().height))"
        )
        assert smallest >= 10, f"the chart's labels are {smallest:.1f} px tall"
        page.screenshot(path=SCREENSHOTS / f"shift-{width}x{height}-trend.png")
    finally:
        page.context.close()


def test_on_a_phone_each_violation_is_readable_and_its_acknowledge_is_in_view(
    stack: Stack, browser: Browser, a_plants_rows: None
) -> None:
    browsing.browser_user("wall")
    page = open_console(browser, stack, 390, 844)
    try:
        page.screenshot(path=SCREENSHOTS / "shift-390x844.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "scrolls sideways"
        first_id = page.locator("#violation-rows tr.violation:not(.acknowledged)").first
        first_open = page.locator(f"#{first_id.get_attribute('id')}")
        button = first_open.get_by_role("button", name="Acknowledge")
        box = button.bounding_box()
        assert box is not None
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, f"off to the side: {box}"
        assert 0 <= box["y"] and box["y"] + box["height"] <= 844, f"below the fold: {box}"
        assert box["height"] >= 24, "too small a target for a thumb"
        for cell in ("td.field-kind", "td.field-camera", "td.field-time", "td.field-image"):
            part = first_open.locator(cell).bounding_box()
            assert part is not None and part["x"] >= 0 and part["x"] + part["width"] <= 390, cell
        button.click()
        expect(first_open).to_contain_text("Acknowledged by wall")
        # Its detail too: the dialog fits the phone.
        page.locator("#violation-rows tr.violation td.field-camera").first.click()
        expect(page.locator("#violation-dialog")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=SCREENSHOTS / "shift-390x844-detail.png")
    finally:
        page.context.close()
