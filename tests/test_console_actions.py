"""Acting from the live table for a shift (issue 24): bulk buttons that name their number
and act on exactly that, a confirmation past 10, Undo from a notice, one order live and
after a reload with late violations announced, and the keys. Real Chromium, real Daphne,
a second browser where a change must reach other screens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, SPY_ON_PLAY, expect_live
from tests.helpers import memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROWS_IN_VIEW = """() => [...document.querySelectorAll('#violation-rows tr.violation')]
  .filter((tr) => { const r = tr.getBoundingClientRect();
                    return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; })
  .map((tr) => tr.id)"""


stack = memory_stack("actions")


@pytest.fixture
def operators() -> None:
    browsing.browser_user("anna")
    browsing.browser_user("bert")


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(SPY_ON_PLAY)
    page = context.new_page()
    yield page
    context.close()


def today_rows(pg: Any, count: int) -> list[int]:
    """`count` PPE violations of today, a minute apart, the newest a minute ago; their ids
    from the oldest to the newest."""
    rows = pg.execute(
        "INSERT INTO violation_ppedetections (camera_id, violation_date, violation_time,"
        " violation_image)"
        " SELECT 1 + i %% 7, (localtimestamp - i * interval '1 minute')::date,"
        " (localtimestamp - i * interval '1 minute')::time, '/media/ppe-' || i || '.jpg'"
        " FROM generate_series(1, %s) AS i ORDER BY i DESC RETURNING id",
        [count],
    ).fetchall()
    return sorted(row_id for (row_id,) in rows)


def detected(pg: Any, camera: int, seconds_ago: float) -> int:
    """A PPE violation detected `seconds_ago`, written now (as a detector catching up)."""
    (row_id,) = pg.execute(
        "INSERT INTO violation_ppedetections (camera_id, violation_date, violation_time,"
        " violation_image) VALUES (%s, (localtimestamp - %s * interval '1 second')::date,"
        " (localtimestamp - %s * interval '1 second')::time, '/media/late.jpg') RETURNING id",
        [camera, seconds_ago, seconds_ago],
    ).fetchone()
    return int(row_id)


def acknowledged(pg: Any) -> set[int]:
    rows = pg.execute(
        "SELECT violation_id FROM realtime_acknowledgement"
        " WHERE table_name = 'violation_ppedetections'"
    ).fetchall()
    return {row_id for (row_id,) in rows}


def test_acknowledge_in_view_names_its_number_asks_past_10_and_acts_on_exactly_those(
    stack, operators, page, second_page, pg
) -> None:
    ids = today_rows(pg, 40)
    browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
    browsing.log_in(second_page, stack.http, "/", "bert", browsing.PASSWORD)
    expect_live(page)
    expect_live(second_page)
    in_view = page.evaluate(ROWS_IN_VIEW)
    assert 10 < len(in_view) < 40, in_view
    button = page.locator("#acknowledge-visible")
    expect(button).to_have_text(f"Acknowledge the {len(in_view)} in view")

    # Asked first, naming the number; cancelled, nothing happens.
    button.click()
    confirm = page.locator("#bulk-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(f"Acknowledge these {len(in_view)} violations?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    page.wait_for_timeout(500)
    assert acknowledged(pg) == set()

    button.click()
    page.screenshot(path=SCREENSHOTS / "bulk-confirm.png")
    confirm.get_by_role("button", name=f"Acknowledge {len(in_view)}").click()
    expect(page.locator("#live-notices")).to_contain_text(f"Acknowledged {len(in_view)}.")
    expected = {int(row_id.rsplit("-", 1)[1]) for row_id in in_view}
    expect(second_page.locator("#violation-rows tr.violation.acknowledged")).to_have_count(
        len(in_view), timeout=2_000
    )
    assert acknowledged(pg) == expected, "exactly the rows in view, none scrolled away"
    assert set(ids) - expected, "rows out of view stayed open"

    # Undo from the notice: open again on both screens, and in the history.
    page.locator("#live-notices").get_by_role("button", name="Undo").click()
    expect(second_page.locator("#violation-rows tr.violation.acknowledged")).to_have_count(
        0, timeout=2_000
    )
    expect(page.locator("#live-notices")).to_contain_text(f"Undone: {len(in_view)} open again.")
    assert acknowledged(pg) == set()
    undone = pg.execute(
        "SELECT count(*) FROM realtime_operator_action WHERE action = 'undo' AND actor = 'anna'"
    ).fetchone()
    assert undone == (len(in_view),)


def test_selected_rows_name_their_number_and_ten_need_no_confirmation(
    stack, operators, page, pg
) -> None:
    ids = today_rows(pg, 12)
    browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
    expect_live(page)
    selected = page.locator("#acknowledge-selected")
    expect(selected).to_have_text("Acknowledge selected (0)")
    for row_id in ids[:3]:
        page.locator(f"#violation-ppe-{row_id} input.select-violation").check()
    expect(selected).to_have_text("Acknowledge selected (3)")
    selected.click()
    expect(page.locator("#live-notices")).to_contain_text("Acknowledged 3.")
    expect(page.locator("#bulk-confirm")).to_be_hidden()
    expect(selected).to_have_text("Acknowledge selected (0)")
    assert acknowledged(pg) == set(ids[:3])


def test_a_late_violation_goes_where_a_reload_puts_it_and_is_announced(
    stack, operators, page, pg
) -> None:
    today_rows(pg, 5)  # a minute to five minutes ago
    browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
    expect_live(page)
    page.click("#sound-toggle")
    # A detector catching up: detected three minutes and a half ago, arriving now.
    late = detected(pg, camera=9, seconds_ago=210.25)
    row = page.locator(f"#violation-ppe-{late}")
    expect(row).to_have_class(re.compile(r"\bis-late\b"), timeout=2_000)
    expect(row.locator(".late-mark")).to_have_text("late")
    live_order = page.locator("#violation-rows tr.violation").evaluate_all(
        "rows => rows.map((tr) => tr.id)"
    )
    assert live_order.index(f"violation-ppe-{late}") == 3, live_order
    expect(page.locator("#live-notices")).to_contain_text("Late violation: PPE, camera 9")
    expect(page.locator("#announcer")).to_contain_text("Late violation: PPE, camera 9")
    assert page.evaluate("window.__plays") >= 1, "a late violation sounds too"
    page.screenshot(path=SCREENSHOTS / "late-violation.png")
    page.reload()
    expect_live(page)
    reloaded = page.locator("#violation-rows tr.violation").evaluate_all(
        "rows => rows.map((tr) => tr.id)"
    )
    assert reloaded == live_order


def test_new_violations_are_announced_once_per_burst(stack, operators, page, pg) -> None:
    browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
    expect_live(page)
    for camera in (4, 5, 6):
        detected(pg, camera=camera, seconds_ago=0)
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "assertive")
    expect(announcer).to_contain_text("New violation: PPE, camera 6", timeout=5_000)
    expect(announcer).to_contain_text("3 new violations")


def test_the_keys_move_open_acknowledge_and_list_themselves(stack, operators, page, pg) -> None:
    ids = today_rows(pg, 3)
    browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
    expect_live(page)
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    expect(page.locator("#keys-help")).to_contain_text("acknowledge it")
    page.keyboard.press("Escape")
    expect(page.locator("#keys-help")).to_be_hidden()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")  # the first row: the newest
    page.keyboard.press("j")
    second = page.locator(f"#violation-ppe-{ids[1]}")
    expect(second).to_be_focused()
    page.keyboard.press("a")
    expect(second).to_contain_text("Acknowledged by anna")
    page.keyboard.press("k")
    expect(page.locator(f"#violation-ppe-{ids[2]}")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#violation-dialog #detail-title")).to_contain_text(f"#{ids[2]}")


def test_a_rows_acknowledge_offers_undo_and_undo_reopens_it(stack, operators, page, pg) -> None:
    ids = today_rows(pg, 2)
    browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
    expect_live(page)
    row = page.locator(f"#violation-ppe-{ids[1]}")
    row.get_by_role("button", name="Acknowledge").click()
    expect(row).to_contain_text("Acknowledged by anna")
    notice = page.locator("#live-notices .live-notice").first
    expect(notice).to_contain_text("Acknowledged PPE, camera")
    notice.get_by_role("button", name="Undo").click()
    expect(row.get_by_role("button", name="Acknowledge")).to_be_visible(timeout=2_000)
    expect(page.locator("#live-notices")).to_contain_text("Undone: 1 open again.")
    assert acknowledged(pg) == set()
