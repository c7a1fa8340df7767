"""The admin's violations' changelist as an operator sees it, in Debian's Chromium on a real
Daphne: 50,002 rows (their number an estimate, said so), times in 24 hours, and the page
within a 1280x800 desk screen however long the detectors' values are.

The screenshot is saved under artifacts/screenshots/ (admin-changelist.png).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests import browsing
from tests.browsing import SCREENSHOTS
from tests.helpers import memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_PATH = "/media/" + "north-hall-loading-dock-camera-07/" * 4 + "2026-12-01T00-50-12.123456.jpg"


stack = memory_stack("admin")


@pytest.fixture
def columns_of_their_own(pg: Any) -> Iterator[None]:
    """Two columns of the detectors' own on the built-in table, as a plant adds them."""
    pg.execute("ALTER TABLE violation_humandetections ADD COLUMN zone text, ADD COLUMN remark text")
    try:
        yield
    finally:
        pg.execute("ALTER TABLE violation_humandetections DROP COLUMN zone, DROP COLUMN remark")


def test_the_violations_changelist_fits_1280_and_says_what_it_estimates(
    stack, page, pg, columns_of_their_own
) -> None:
    browsing.browser_user("admin", superuser=True)
    pg.execute(
        "INSERT INTO violation_humandetections (camera_id, violation_date, violation_time,"
        " violation_image) SELECT n % 40, DATE '2026-11-01' + n / 5000, TIME '06:00', '/media/'"
        " || n || '.jpg' FROM generate_series(1, 50000) n"
    )
    remark = "person walked along the conveyor without a vest while the line was running " * 2
    for n in range(2):
        pg.execute(
            "INSERT INTO violation_humandetections (camera_id, violation_date, violation_time,"
            " violation_image, zone, remark) VALUES (%s, '2026-12-01', %s, %s, %s, %s)",
            [1234567 + n, f"00:50:1{n}.123456", LONG_PATH, "loading-dock-north-east-" * 3, remark],
        )
    pg.execute(
        "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
        " acknowledged_at) SELECT 'violation_humandetections', max(id),"
        " 'operator-with-a-long-name', '2026-12-01 00:52:00+00' FROM violation_humandetections"
    )
    pg.execute("ANALYZE violation_humandetections")
    browsing.log_in(page, stack.http, "/admin/realtime/humandetection/", "admin", browsing.PASSWORD)
    expect(page.locator("#result_list tbody tr")).to_have_count(100)
    expect(page.locator("p.paginator")).to_contain_text(
        re.compile(r"about 50,000 people in restricted zones")
    )
    first = page.locator("#result_list tbody tr").first
    expect(first.locator(".field-violation_time")).to_have_text("00:50:11")
    expect(first.locator(".field-acknowledged_at")).to_contain_text("00:52")
    assert "a.m." not in page.locator("#result_list").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "admin-changelist.png")
    # Nothing to scroll sideways: not the page, and not the list inside its box.
    widths = page.evaluate(
        """() => {
          const results = document.querySelector('#changelist .results');
          return {
            page: document.documentElement.scrollWidth,
            list: results.scrollWidth,
            box: results.clientWidth,
            right: document.querySelector('#result_list').getBoundingClientRect().right,
          };
        }"""
    )
    assert widths["page"] <= 1280 and widths["right"] <= 1280, widths
    assert widths["list"] <= widths["box"], widths
