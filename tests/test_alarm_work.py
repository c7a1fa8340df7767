"""Alarm work shared by every screen (issue #15), in two real browsers on a real Daphne."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests import browsing
from tests.browsing import SPY_ON_PLAY, expect_live
from tests.helpers import insert_violation, memory_stack
from tests.history_rows import insert

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = browsing.PASSWORD


stack = memory_stack("alarm-work")


@pytest.fixture
def operators() -> None:
    for name in ("anna", "bert"):
        browsing.browser_user(name)


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script(SPY_ON_PLAY)
    page = context.new_page()
    yield page
    context.close()


def both_live(stack: Any, page: Page, second_page: Page) -> None:
    """anna on the first screen, bert on the second, both live."""
    browsing.log_in(page, stack.http, "/", "anna", PASSWORD)
    browsing.log_in(second_page, stack.http, "/", "bert", PASSWORD)
    expect_live(page)
    expect_live(second_page)


def row(page: Page, kind: str, row_id: int) -> Any:
    return page.locator(f"#violation-{kind}-{row_id}")


def test_a_bulk_acknowledgement_reaches_a_second_browser_within_2_s(
    stack, operators, page, second_page, pg
) -> None:
    ids = [insert_violation(pg, "violation_ppedetections", camera_id=n) for n in (1, 2, 3)]
    loto = insert_violation(pg, "violation_lotodetections", camera_id=4)
    both_live(stack, page, second_page)
    expect(second_page.locator('.count[data-kind="ppe"]')).to_have_text("3")

    expect(page.locator("#acknowledge-selected")).to_be_disabled()
    row(page, "ppe", ids[0]).locator("input.select-violation").check()
    row(page, "loto", loto).locator("input.select-violation").check()
    page.click("#acknowledge-selected")
    expect(page.locator("#live-notices")).to_contain_text("Acknowledged 2.")
    for other in (page, second_page):
        for kind, row_id in (("ppe", ids[0]), ("loto", loto)):
            expect(row(other, kind, row_id)).to_contain_text("Acknowledged by anna", timeout=2_000)
        expect(row(other, "ppe", ids[1])).to_contain_text("Acknowledge")
        expect(row(other, "ppe", ids[1])).not_to_contain_text("Acknowledged by")
        expect(other.locator('.count[data-kind="ppe"]')).to_have_text("2")
        expect(other.locator('.count[data-kind="loto"]')).to_have_text("0")

    second_page.click("#acknowledge-visible")
    for other in (second_page, page):
        for row_id in ids[1:]:
            expect(row(other, "ppe", row_id)).to_contain_text("Acknowledged by bert", timeout=2_000)
        expect(row(other, "ppe", ids[0])).to_contain_text("Acknowledged by anna")
        expect(other.locator('.count[data-kind="ppe"]')).to_have_text("0")
    assert page.evaluate("window.__plays") == 0, "acknowledgements make no sound"


def test_a_note_reaches_a_second_browser_within_2_s(
    stack, operators, page, second_page, pg
) -> None:
    row_id = insert_violation(pg, "violation_humandetections", camera_id=7)
    both_live(stack, page, second_page)
    row(page, "human", row_id).get_by_role("button", name="Acknowledge").click()
    expect(row(second_page, "human", row_id)).to_contain_text("Acknowledged by anna", timeout=2_000)

    dialog = open_detail(page, "human", row_id)
    note = dialog.get_by_role("textbox", name="Add a note")
    note.fill("Contractor escorted out, gate 3 closed.")
    note.press("Enter")
    expect(dialog.locator(".detail-note-text")).to_have_text(
        "Contractor escorted out, gate 3 closed.", timeout=2_000
    )
    dialog.get_by_role("button", name="Close").click()
    for other in (page, second_page):
        expect(row(other, "human", row_id).locator(".ack-note")).to_contain_text(
            "Contractor escorted out, gate 3 closed.", timeout=2_000
        )
        expect(row(other, "human", row_id).locator(".ack-note")).to_contain_text("anna")
    second_page.reload()  # as the server renders it
    expect(row(second_page, "human", row_id).locator(".ack-note q")).to_have_text(
        "Contractor escorted out, gate 3 closed."
    )
    expect(row(second_page, "human", row_id)).to_have_count(1)


def open_detail(page: Page, kind: str, row_id: int) -> Locator:
    """The row's detail in the live table's dialog, as a click on the row opens it."""
    row(page, kind, row_id).locator("td.field-camera").click()
    dialog = page.locator("#violation-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#detail-title")).to_contain_text(f"#{row_id}")
    return dialog


def test_acknowledged_from_the_detail_with_a_note_it_reaches_a_second_browser_within_2_s(
    stack, operators, page, second_page, pg
) -> None:
    row_id = insert_violation(pg, "violation_humandetections", camera_id=7)
    both_live(stack, page, second_page)
    dialog = open_detail(page, "human", row_id)
    dialog.locator("form.detail-acknowledge").get_by_role("textbox").fill("Seen on camera 7.")
    dialog.get_by_role("button", name="Acknowledge").click()
    # The detail shows the result at once, like the row.
    expect(dialog.locator("#acknowledgement")).to_contain_text("Acknowledged by anna")
    expect(dialog.locator("#acknowledgement")).to_contain_text("Seen on camera 7.")
    expect(dialog.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)
    for other in (page, second_page):
        expect(row(other, "human", row_id)).to_contain_text("Acknowledged by anna", timeout=2_000)
        expect(row(other, "human", row_id).locator(".ack-note q")).to_have_text(
            "Seen on camera 7.", timeout=2_000
        )


def test_an_acknowledgement_undone_from_the_detail_is_open_again_on_a_second_browser(
    stack, operators, page, second_page, pg
) -> None:
    row_id = insert_violation(pg, "violation_humandetections", camera_id=8)
    both_live(stack, page, second_page)
    dialog = open_detail(page, "human", row_id)
    dialog.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(row(second_page, "human", row_id)).to_contain_text("Acknowledged by anna", timeout=2_000)
    dialog.get_by_role("button", name="Undo the acknowledgement").click()
    expect(dialog.locator("#acknowledgement")).to_contain_text("Not acknowledged.")
    expect(dialog.locator("#history")).to_contain_text("anna took the acknowledgement back")
    for other in (page, second_page):
        expect(row(other, "human", row_id).get_by_role("button", name="Acknowledge")).to_be_visible(
            timeout=2_000
        )
    # Bert may not take back what anna did: no Undo in his detail.
    dialog.get_by_role("button", name="Acknowledge", exact=True).click()
    other_dialog = open_detail(second_page, "human", row_id)
    expect(other_dialog.locator("#acknowledgement")).to_contain_text("Acknowledged by anna")
    expect(other_dialog.get_by_role("button", name="Undo the acknowledgement")).to_have_count(0)


def test_a_camera_shelved_from_the_detail_is_shelved_on_a_second_browser_within_2_s(
    stack, operators, page, second_page, pg
) -> None:
    row_id = insert_violation(pg, "violation_humandetections", camera_id=31)
    both_live(stack, page, second_page)
    dialog = open_detail(page, "human", row_id)
    shelve = dialog.locator("form.detail-shelve")
    shelve.get_by_role("combobox").select_option(label="30 min")
    shelve.get_by_role("textbox", name="Reason").fill("Lens cleaning")
    shelve.get_by_role("button", name="Shelve camera 31").click()
    shelved = dialog.locator("#camera-shelved")
    expect(shelved).to_contain_text("Its camera, 31, is shelved now by anna")
    expect(shelved).to_contain_text("Lens cleaning")
    expect(second_page.locator("#shelves .shelf")).to_contain_text(
        "Camera 31 shelved by anna", timeout=2_000
    )
    expect(second_page.locator("#shelves .shelf")).to_contain_text("Lens cleaning")


def test_the_detail_says_why_it_refuses_a_note(stack, operators, page, pg) -> None:
    row_id = insert_violation(pg, "violation_humandetections", camera_id=7)
    browsing.log_in(page, stack.http, "/", "anna", PASSWORD)
    expect_live(page)
    dialog = open_detail(page, "human", row_id)
    dialog.get_by_role("button", name="Acknowledge").click()
    note = dialog.get_by_role("textbox", name="Add a note")
    note.evaluate("e => e.removeAttribute('maxlength')")  # what a script could send
    note.fill("x" * 1001)
    note.press("Enter")
    expect(dialog.locator(".detail-act-error")).to_have_text(
        "A note has at most 1000 characters.", timeout=10_000
    )


def test_a_row_shows_its_age_live_and_after_a_reload_alike(stack, operators, browser, pg) -> None:
    """The detectors' date and time are the plant's local time; the age counts from the
    server's local time, whatever the browser's time zone (Tokyo's here)."""
    context = browser.new_context(timezone_id="Asia/Tokyo")
    page = context.new_page()
    pg.execute(
        "INSERT INTO violation_ppedetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " SELECT 5, (t - interval '7 minutes 30 seconds')::date,"
        " (t - interval '7 minutes 30 seconds')::time, '/media/aged.jpg'"
        " FROM (SELECT now() AT TIME ZONE current_setting('TimeZone') AS t) now_here"
    )
    browsing.log_in(page, stack.http, "/", "anna", PASSWORD)
    aged = page.locator("#violation-rows tr", has_text="/media/aged.jpg")
    expect(aged.locator(".age")).to_have_text("7 min ago")
    expect_live(page)
    insert_violation(pg, "violation_ppedetections", camera_id=6, image="/media/fresh.jpg")
    fresh = page.locator("#violation-rows tr", has_text="/media/fresh.jpg")
    expect(fresh.locator(".age")).to_have_text("just now", timeout=5_000)
    live_time = fresh.locator(".field-time").inner_text()
    page.reload()
    expect(fresh.locator(".field-time")).to_have_text(live_time)
    context.close()


def test_a_rows_detail_opens_in_a_dialog_closes_with_escape_and_is_shareable(
    stack, operators, page, pg, fire_kind
) -> None:
    pk = insert(pg, "fire", "2026-11-30", "23:59:58.125", 9, temperature=412.5, zone="Hall B")
    browsing.log_in(page, stack.http, "/?kind=fire", "anna", PASSWORD)
    expect_live(page)
    dialog = page.locator("#violation-dialog")
    expect(dialog).to_be_hidden()
    page.locator(f"#violation-fire-{pk} .field-camera").click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("#detail-title")).to_contain_text(f"#{pk}")
    expect(dialog.locator("td.detail-temperature")).to_have_text("412.5")
    expect(dialog.locator("td.detail-zone")).to_have_text("Hall B")
    expect(dialog.locator("td.detail-violation_time")).to_have_text("23:59:58.125")
    assert page.url.endswith(f"#detail=fire/{pk}")
    shared = page.url
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # The dialog's `close` event (which puts the address back) is queued after it closes.
    page.wait_for_function("() => !window.location.hash.startsWith('#detail')")

    # By keyboard: the row's #id link, Enter; the focus returns to it on close.
    link = page.locator(f"#violation-fire-{pk} a.row-link")
    link.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('row-link')")

    # A control in the row does what it does, and opens nothing.
    page.locator(f"#violation-fire-{pk} input.select-violation").check()
    expect(dialog).to_be_hidden()

    other = page.context.new_page()  # the shared link, opened afresh
    other.goto(shared)
    expect(other.locator("#violation-dialog")).to_be_visible()
    expect(other.locator("#violation-dialog td.detail-zone")).to_have_text("Hall B")
    page.goto(shared)  # and pasted into the same tab (only the fragment changes)
    expect(dialog).to_be_visible()


def sound_on(page: Page) -> None:
    page.click("#sound-toggle")  # the user gesture browsers require
    expect(page.locator("#sound-toggle")).to_have_text("Mute sound")
    page.evaluate("window.__plays = 0")


def test_a_shelved_cameras_row_arrives_without_a_sound_and_the_shelf_reaches_every_screen(
    stack, operators, page, second_page, pg
) -> None:
    browsing.log_in(page, stack.http, "/", "anna", PASSWORD)
    browsing.log_in(second_page, stack.http, "/", "bert", PASSWORD)
    for screen in (page, second_page):
        expect_live(screen)
        sound_on(screen)
        expect(screen.locator("#shelves")).to_contain_text("No camera is shelved")

    form = page.locator("#shelves form.shelve-form")
    form.get_by_label("Camera").fill("7")
    form.get_by_label("for").select_option("15")
    form.get_by_label("Reason").fill("Lens cleaning")
    form.get_by_role("button", name="Shelve").click()
    for screen in (page, second_page):
        shelf = screen.locator("#shelves .shelf")
        expect(shelf).to_contain_text("Camera 7 shelved by anna", timeout=2_000)
        expect(shelf).to_contain_text("Lens cleaning")

    shelved = insert_violation(pg, "violation_ppedetections", camera_id=7)
    for screen in (page, second_page):
        arrived = row(screen, "ppe", shelved)
        expect(arrived).to_contain_text("Shelved", timeout=5_000)
        expect(arrived).to_have_class("violation kind-ppe shelved is-new")
    page.wait_for_timeout(1_000)
    for screen in (page, second_page):
        assert screen.evaluate("window.__plays") == 0, "a shelved camera's row makes no sound"
        expect(screen.locator('.count[data-kind="ppe"]')).to_have_text("0")

    heard = insert_violation(pg, "violation_ppedetections", camera_id=8)
    for screen in (page, second_page):
        expect(row(screen, "ppe", heard)).to_be_visible(timeout=5_000)
        expect(screen.locator('.count[data-kind="ppe"]')).to_have_text("1")
        screen.wait_for_function("() => window.__plays === 1", timeout=2_000)

    second_page.get_by_role("button", name="Unshelve camera 7").click()
    for screen in (second_page, page):
        expect(screen.locator("#shelves")).to_contain_text("No camera is shelved", timeout=2_000)
    page.reload()
    expect(row(page, "ppe", shelved)).to_contain_text("Shelved")
    expect(page.locator('.count[data-kind="ppe"]')).to_have_text("1")


def test_a_shelf_ends_by_itself_on_the_screen_and_a_refused_one_says_why(
    stack, operators, page, pg
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from realtime.models import Shelf

    now = timezone.now()
    Shelf.objects.create(
        camera_id=3,
        shelved_by="bert",
        shelved_at=now - timedelta(minutes=10),
        until=now + timedelta(seconds=4),
        time_zone="UTC",
    )
    browsing.log_in(page, stack.http, "/", "anna", PASSWORD)
    expect_live(page)
    expect(page.locator("#shelves .shelf")).to_contain_text("Camera 3 shelved by bert")
    expect(page.locator("#shelves")).to_contain_text("No camera is shelved", timeout=8_000)
    sound_on(page)
    after = insert_violation(pg, "violation_humandetections", camera_id=3)
    expect(row(page, "human", after)).to_be_visible(timeout=5_000)
    expect(row(page, "human", after)).not_to_contain_text("Shelved")
    page.wait_for_function("() => window.__plays === 1", timeout=2_000)

    form = page.locator("#shelves form.shelve-form")
    form.get_by_label("Camera").fill("99999999999")
    form.get_by_role("button", name="Shelve").click()
    expect(form.locator(".shelve-error")).to_have_text("camera must be a camera number")
    assert not Shelf.objects.filter(until__gt=timezone.now()).exists()
