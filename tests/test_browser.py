"""The live table in a real browser: Chromium (Debian's) driven by Playwright, real Daphne.

Screenshots are saved under artifacts/screenshots/ (docs/how-to/develop.md).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, SPY_ON_PLAY, expect_live
from tests.helpers import Stack, insert_violation, memory_stack, newest_event, prune_log

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = browsing.PASSWORD


stack = memory_stack("browser")


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator", superuser=True)


def log_in(page: Page, stack: Stack, path: str = "/") -> None:
    browsing.log_in(page, stack.http, path, "operator", PASSWORD)


def rows(page: Page) -> Any:
    return page.locator("#violation-rows tr.violation")


def test_a_new_row_appears_at_the_top(stack, operator, page, pg, marker) -> None:
    insert_violation(pg, "violation_ppedetections", image="/media/older.jpg")
    log_in(page, stack)
    expect_live(page)
    insert_violation(pg, "violation_lotodetections", camera_id=12, image=marker)
    first = rows(page).first
    # A bound, not a speed (bench/ measures that): the first browser test of a busy CI run
    # once took longer than 2 s.
    expect(first).to_contain_text(marker, timeout=10_000)
    expect(first).to_contain_text("LOTO")
    expect(first).to_have_class(re.compile(r"\bis-new\b"))
    expect(page.locator('.count[data-kind="loto"]')).to_have_text("1")


def test_row_values_are_shown_as_text_never_run(stack, operator, page, pg) -> None:
    log_in(page, stack)
    expect_live(page)
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    insert_violation(pg, image=hostile)
    expect(rows(page).first.locator(".field-image")).to_have_text(hostile, timeout=5_000)
    assert page.locator("#violation-rows img").count() == 0
    page.reload()  # and as rendered by the server on load
    expect(rows(page).first.locator(".field-image")).to_have_text(hostile)


def test_filtered_page_shows_only_its_kind_and_camera(stack, operator, page, pg) -> None:
    log_in(page, stack, "/?kind=ppe&camera=3")
    expect_live(page)
    insert_violation(pg, "violation_humandetections", camera_id=3, image="/media/human-3.jpg")
    insert_violation(pg, "violation_ppedetections", camera_id=4, image="/media/ppe-4.jpg")
    insert_violation(pg, "violation_ppedetections", camera_id=3, image="/media/ppe-3.jpg")
    expect(rows(page).first).to_contain_text("/media/ppe-3.jpg", timeout=5_000)
    expect(page.locator("#violation-rows")).not_to_contain_text("/media/human-3.jpg")
    expect(page.locator("#violation-rows")).not_to_contain_text("/media/ppe-4.jpg")
    page.reload()
    expect(rows(page)).to_have_count(1)


def test_update_replaces_and_delete_removes_the_row(stack, operator, page, pg) -> None:
    log_in(page, stack)
    expect_live(page)
    row_id = insert_violation(pg, camera_id=1, image="/media/to-change.jpg")
    expect(rows(page).first).to_contain_text("/media/to-change.jpg", timeout=5_000)
    pg.execute(
        "UPDATE violation_humandetections SET violation_image = '/media/changed.jpg' WHERE id = %s",
        [row_id],
    )
    expect(page.locator(f"#violation-human-{row_id}")).to_contain_text("/media/changed.jpg")
    expect(rows(page)).to_have_count(1)
    pg.execute("DELETE FROM violation_humandetections WHERE id = %s", [row_id])
    expect(page.locator(f"#violation-human-{row_id}")).to_have_count(0)


def test_one_sound_for_a_burst_of_20_rows_in_one_of_two_tabs(stack, operator, browser, pg) -> None:
    context = browser.new_context()
    context.add_init_script(SPY_ON_PLAY)
    tabs = [context.new_page(), context.new_page()]
    try:
        log_in(tabs[0], stack)
        tabs[1].goto(stack.http + "/")
        for tab in tabs:
            expect_live(tab)
            tab.click("#sound-toggle")  # the user gesture browsers require
            expect(tab.locator("#sound-toggle")).to_have_text("Mute sound")
            tab.evaluate("window.__plays = 0")
            tab.wait_for_timeout(2_100)  # past the enable click's own burst window
        pg.execute(
            "INSERT INTO violation_ppedetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " SELECT n, CURRENT_DATE, LOCALTIME(0), '/media/burst-' || n || '.jpg'"
            " FROM generate_series(1, 20) AS n"
        )
        for tab in tabs:
            expect(rows(tab)).to_have_count(20, timeout=5_000)
        tabs[0].wait_for_timeout(500)
        plays = [tab.evaluate("window.__plays") for tab in tabs]
        assert sum(plays) == 1, plays
        # The next burst, once the window has passed, sounds again (once).
        tabs[0].wait_for_timeout(2_000)
        insert_violation(pg, "violation_ppedetections", camera_id=1, image="/media/later.jpg")
        for tab in tabs:
            expect(rows(tab)).to_have_count(21, timeout=5_000)
        tabs[0].wait_for_timeout(500)
        plays = [tab.evaluate("window.__plays") for tab in tabs]
        assert sum(plays) == 2, plays
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tabs[0].screenshot(path=SCREENSHOTS / "live-table.png")
    finally:
        context.close()


def test_mute_is_remembered(stack, operator, page) -> None:
    log_in(page, stack)
    expect(page.locator("#sound-toggle")).to_have_text("Enable sound")
    page.click("#sound-toggle")
    page.reload()
    expect(page.locator("#sound-toggle")).to_have_text("Mute sound")
    page.click("#sound-toggle")
    page.reload()
    expect(page.locator("#sound-toggle")).to_have_text("Enable sound")


def test_server_restart_shows_reconnecting_then_live_and_rows_once(
    stack, operator, page, pg
) -> None:
    log_in(page, stack)
    expect_live(page)
    images = [f"/media/while-down-{n}.jpg" for n in range(3)]

    def insert_while_down() -> None:
        expect(page.locator("#connection-state")).to_have_text("Reconnecting…", timeout=10_000)
        for image in images:
            insert_violation(pg, image=image)

    stack.restart_server(down=insert_while_down)
    expect_live(page)
    for image in images:
        expect(page.locator("#violation-rows tr", has_text=image)).to_have_count(1, timeout=10_000)
    page.wait_for_timeout(1_000)  # replays and the listener's catch-up both arrived
    for image in images:
        expect(page.locator("#violation-rows tr", has_text=image)).to_have_count(1)


def test_load_older_pages_through_without_duplicates(stack, operator, page, pg) -> None:
    pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " SELECT 1, DATE '2025-01-01' + n, TIME '12:00', '/media/old-' || n || '.jpg'"
        " FROM generate_series(1, 60) AS n"
    )
    log_in(page, stack)
    expect(rows(page)).to_have_count(50)
    expect(rows(page).first).to_contain_text("/media/old-60.jpg")
    page.click("#load-older button")
    expect(rows(page)).to_have_count(60)
    expect(rows(page).last).to_contain_text("/media/old-1.jpg")
    expect(page.locator("#load-older")).to_have_count(0)


def test_legacy_page_logs_each_row(stack, operator, page, pg, marker) -> None:
    messages: list[ConsoleMessage] = []
    page.on("console", lambda message: messages.append(message))
    log_in(page, stack, "/legacy/")
    page.wait_for_function("() => ws.readyState === WebSocket.OPEN")  # not eval: CSP
    insert_violation(pg, image=marker)
    page.wait_for_event(
        "console", lambda m: m.text.startswith("Violation from violation_humandetections")
    )
    [logged] = [m for m in messages if m.text.startswith("Violation from")]
    assert logged.args[1].json_value()["violation_image"] == marker
    assert page.evaluate("window.__plays") == 1, "the ping is played"


def test_admin_changelist_gains_the_row(stack, operator, page, pg, marker) -> None:
    insert_violation(pg, "violation_lotodetections", image="/media/already-there.jpg")
    log_in(page, stack, "/admin/realtime/lotodetection/")
    expect_live(page)
    insert_violation(pg, "violation_lotodetections", image=marker)
    insert_violation(pg, "violation_humandetections", image="/media/not-loto.jpg")
    first = page.locator("#result_list tbody tr").first
    expect(first).to_contain_text(marker, timeout=5_000)
    expect(page.locator("#result_list")).not_to_contain_text("/media/not-loto.jpg")


def test_a_reset_after_pruning_reloads_the_rows(stack, operator, page, pg) -> None:
    log_in(page, stack)
    expect_live(page)
    insert_violation(pg, image="/media/seen-live.jpg")
    expect(rows(page).first).to_contain_text("/media/seen-live.jpg", timeout=5_000)

    def while_down() -> None:
        insert_violation(pg, image="/media/pruned-while-away.jpg")
        insert_violation(pg, image="/media/kept-while-away.jpg")
        # The event the page would resume after is gone from the log.
        prune_log(pg, newest_event(pg) - 1)

    stack.restart_server(down=while_down)
    # The page cannot be told what it missed, so it draws itself anew from the tables.
    expect(page.locator("#violation-rows")).to_contain_text(
        "/media/pruned-while-away.jpg", timeout=15_000
    )
    expect(page.locator("#violation-rows")).to_contain_text("/media/kept-while-away.jpg")
    expect_live(page)


def test_acknowledging_shows_on_every_screen_and_can_hide(stack, operator, browser, pg) -> None:
    context = browser.new_context()
    screens = [context.new_page(), context.new_page()]
    try:
        log_in(screens[0], stack)
        screens[1].goto(stack.http + "/?unacknowledged=1")
        row_id = insert_violation(pg, "violation_ppedetections", image="/media/to-ack.jpg")
        for screen in screens:
            expect_live(screen)
            expect(screen.locator(f"#violation-ppe-{row_id}")).to_be_visible(timeout=5_000)
            expect(screen.locator('.count[data-kind="ppe"]')).to_have_text("1")
        screens[0].click(f"#violation-ppe-{row_id} .ack-button")
        expect(screens[0].locator(f"#violation-ppe-{row_id}")).to_contain_text(
            "Acknowledged by operator"
        )
        # The other screen hides acknowledged rows: the UPDATE removes it from view.
        expect(screens[1].locator(f"#violation-ppe-{row_id}")).to_be_hidden(timeout=5_000)
        for screen in screens:
            expect(screen.locator('.count[data-kind="ppe"]')).to_have_text("0")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        screens[0].screenshot(path=SCREENSHOTS / "acknowledged.png")
    finally:
        context.close()


def test_the_legacy_page_resumes_after_a_restart_and_reloads_on_a_reset(
    stack, operator, page, pg
) -> None:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    log_in(page, stack, "/legacy/")
    page.wait_for_function("() => ws.readyState === WebSocket.OPEN")
    insert_violation(pg, image="/media/legacy-before.jpg")
    page.wait_for_function("() => resume !== ''")
    # Away while a row is written: it comes back from where it was, and logs the row once.
    stack.restart_server(down=lambda: insert_violation(pg, image="/media/legacy-missed.jpg"))
    page.wait_for_function("() => seen.size === 2", timeout=15_000)
    assert len([m for m in messages if m.startswith("Violation from")]) == 2

    # Away while the log is pruned past it: it draws itself anew (a fresh page, no seen ids).
    def pruned() -> None:
        insert_violation(pg, image="/media/legacy-pruned.jpg")
        insert_violation(pg, image="/media/legacy-kept.jpg")
        prune_log(pg, newest_event(pg) - 1)

    with page.expect_event("load", timeout=15_000):
        stack.restart_server(down=pruned)
    page.wait_for_function("() => ws.readyState === WebSocket.OPEN")
    assert page.evaluate("seen.size") == 0
