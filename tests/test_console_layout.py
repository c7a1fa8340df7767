"""The console at a desk (1280x800) and on a wall screen (1920x1080), light and dark (#15),
in the real Chromium against a real Daphne. Screenshots: artifacts/screenshots/console-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import memory_stack
from tests.history_rows import insert

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# WCAG's contrast ratio of two computed CSS colours (rgb() or rgba(), alpha ignored).
CONTRAST = """([fg, bg]) => {
  const channels = (css) => css.match(/[0-9.]+/g).slice(0, 3).map(Number);
  const luminance = (css) => {
    const [r, g, b] = channels(css).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [a, b] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


stack = memory_stack("console")


@pytest.fixture
def wide_rows(pg: Any) -> Iterator[None]:
    """Rows as a plant has them: a long image path, and the detectors' own extra columns."""
    pg.execute("ALTER TABLE violation_ppedetections ADD COLUMN zone text, ADD COLUMN score real")
    try:
        for n in range(12):
            insert(pg, "ppe", "2026-12-01", f"10:{n:02d}:00.5", camera=n + 1)
        pg.execute(
            "UPDATE violation_ppedetections SET zone = repeat('Hall B, north gate, bay 4 ', 3),"
            " score = 0.93, violation_image ="
            " '/media/cam01/2026/12/01/a-rather-long-file-name-from-the-camera-system-0001.jpg'"
            " WHERE camera_id = 1"
        )
        yield
    finally:
        pg.execute("ALTER TABLE violation_ppedetections DROP COLUMN zone, DROP COLUMN score")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1920, 1080)])
def test_the_console_fits_the_screen_and_reads_in_light_and_dark(
    stack,
    browser: Browser,
    pg,
    wide_rows: None,
    width: int,
    height: int,
    scheme: Literal["light", "dark"],
) -> None:
    browsing.browser_user("wall")
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    try:
        browsing.log_in(page, stack.http, "/", "wall", browsing.PASSWORD)
        expect_live(page)
        first = page.locator("#violation-rows tr.violation").first
        expect(first).to_be_visible()

        overflow = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth,"
            " document.querySelector('#result_list').scrollWidth,"
            " document.querySelector('#changelist .results').clientWidth]"
        )
        assert overflow[0] <= overflow[1], f"the page scrolls sideways: {overflow}"
        assert overflow[2] <= overflow[3], f"the table is wider than its place: {overflow}"
        for control in ("#connection-state", "#counters", "#sound-toggle", "#shelves"):
            box = page.locator(control).bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, f"{control} off screen"
        box = first.bounding_box()
        assert box is not None and box["y"] + 40 <= height, "the first row is below the fold"
        if height >= 1080:
            assert box["y"] + box["height"] <= height, "a wall shows whole rows"

        body = page.evaluate(
            "() => [getComputedStyle(document.body).color,"
            " getComputedStyle(document.body).backgroundColor]"
        )
        dark_page = page.evaluate(CONTRAST, ["rgb(0, 0, 0)", body[1]]) < 3
        assert dark_page == (scheme == "dark"), f"{scheme} page drawn with {body}"
        for selector in (
            "#violation-rows tr.violation td.field-camera",
            "#violation-rows tr.violation .field-time .age",
            "#shelves .no-shelves",
            ".counters a",
        ):
            colour = page.locator(selector).first.evaluate("e => getComputedStyle(e).color")
            ratio = page.evaluate(CONTRAST, [colour, body[1]])
            assert ratio >= 4.5, f"{selector}: {colour} on {body[1]} is {ratio:.1f}:1"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"console-{width}x{height}-{scheme}.png")
    finally:
        context.close()


def test_the_theme_toggle_switches_the_console_to_dark_and_back(stack, page, pg) -> None:
    browsing.browser_user("night")
    browsing.log_in(page, stack.http, "/", "night", browsing.PASSWORD)
    expect_live(page)
    background = "() => getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    toggle = page.locator("#user-tools .theme-toggle")
    for _ in range(3):  # auto, then dark and light in the admin's order
        toggle.click()
        if page.evaluate("document.documentElement.dataset.theme") == "dark":
            break
    assert page.evaluate(background) != light
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(background) != light, "the choice is kept"
