"""Attention that survives real browsers (#15): desktop notifications while the tab is
hidden, a reminder sound for violations left unacknowledged, a sound per kind. The real
Chromium against a real Daphne (REALTIME_REMINDER_MINUTES=0.05: 3 s instead of minutes).

Headless Chromium reports every tab as visible whatever is in front (tried: a second tab,
a minimised window, Target.activateTarget), so the test says the tab is hidden the way a
browser does: document.visibilityState and a visibilitychange event. The Notification API
is the browser's own, permission granted to the origin; the spy only records each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from realtime.models import ViolationKind
from tests import browsing
from tests.browsing import expect_live
from tests.helpers import Stack, insert_violation

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = browsing.PASSWORD

# Records what each play() played, and each notification (made by the real constructor).
SPIES = """
window.__played = [];
HTMLMediaElement.prototype.play = function () {
  window.__played.push(this.src);
  return Promise.resolve();
};
window.__notices = [];
const RealNotification = window.Notification;
window.Notification = function (title, options) {
  const notice = new RealNotification(title, options);
  window.__notices.push({ title: title, body: (options || {}).body, notice: notice });
  return notice;
};
window.Notification.requestPermission = RealNotification.requestPermission.bind(RealNotification);
Object.defineProperty(window.Notification, "permission", {
  get: () => RealNotification.permission,
});
let hidden = false;
Object.defineProperty(document, "visibilityState", { get: () => (hidden ? "hidden" : "visible") });
Object.defineProperty(document, "hidden", { get: () => hidden });
window.__hide = function (value) {
  hidden = value;
  document.dispatchEvent(new Event("visibilitychange"));
};
"""


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    stack = Stack.start(
        "memory",
        database_url,
        None,
        tmp_path_factory.mktemp("attention"),
        REALTIME_REMINDER_MINUTES="0.05",
    )
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def console(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Page]:
    browsing.browser_user("olga")
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        permissions=["notifications"],
        base_url=stack.http,
    )
    context.add_init_script(SPIES)
    page = context.new_page()
    yield page
    page.screenshot(path=browsing.SCREENSHOTS / f"{request.node.name}.png")
    context.close()


def sound_on(page: Page) -> None:
    page.click("#sound-toggle")
    expect(page.locator("#sound-toggle")).to_have_text("Mute sound")
    page.evaluate("window.__played = []")


def test_a_burst_in_a_hidden_tab_is_one_notification_that_focuses_its_row(
    stack, console, pg
) -> None:
    browsing.log_in(console, stack.http, "/", "olga", PASSWORD)
    expect_live(console)
    expect(console.locator("#notify-toggle")).to_have_text("Notify me")
    console.click("#notify-toggle")
    expect(console.locator("#notify-toggle")).to_have_text("Stop notifications")

    insert_violation(pg, "violation_ppedetections", camera_id=1)
    expect(console.locator("#violation-rows tr.violation")).to_have_count(1, timeout=5_000)
    console.wait_for_timeout(2_500)
    assert console.evaluate("window.__notices.length") == 0, "a visible tab is not notified"

    console.evaluate("window.__hide(true)")
    first = insert_violation(pg, "violation_lotodetections", camera_id=12)
    insert_violation(pg, "violation_ppedetections", camera_id=13)
    insert_violation(pg, "violation_humandetections", camera_id=14)
    console.wait_for_function("() => window.__notices.length === 1", timeout=5_000)
    console.wait_for_timeout(2_500)
    notices = console.evaluate("window.__notices.map(n => [n.title, n.body])")
    assert len(notices) == 1, f"one notification per burst: {notices}"
    assert notices[0][0] == "3 new violations"
    assert "LOTO, camera 12" in notices[0][1]

    console.evaluate("window.__hide(false)")
    console.evaluate("window.__notices[0].notice.onclick()")
    row = console.locator(f"#violation-loto-{first}")
    expect(row).to_have_class("violation kind-loto is-new is-focused")
    expect(row.locator("a.row-link")).to_be_focused()

    console.click("#notify-toggle")
    expect(console.locator("#notify-toggle")).to_have_text("Notify me")
    console.evaluate("window.__hide(true)")
    insert_violation(pg, "violation_ppedetections", camera_id=15)
    expect(console.locator("#violation-rows tr.violation")).to_have_count(5, timeout=5_000)
    console.wait_for_timeout(2_500)
    assert console.evaluate("window.__notices.length") == 1, "turned off: no notification"


def test_a_shelved_cameras_violation_notifies_nobody(stack, console, pg) -> None:
    browsing.log_in(console, stack.http, "/", "olga", PASSWORD)
    expect_live(console)
    console.click("#notify-toggle")
    form = console.locator("#shelves form.shelve-form")
    form.get_by_label("Camera").fill("21")
    form.get_by_role("button", name="Shelve").click()
    expect(console.locator("#shelves .shelf")).to_contain_text("Camera 21")
    console.evaluate("window.__hide(true)")
    shelved = insert_violation(pg, "violation_ppedetections", camera_id=21)
    expect(console.locator(f"#violation-ppe-{shelved}")).to_contain_text("Shelved", timeout=5_000)
    console.wait_for_timeout(2_500)
    assert console.evaluate("window.__notices.length") == 0


def test_the_reminder_plays_while_an_old_violation_is_unacknowledged(stack, console, pg) -> None:
    pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " SELECT 31, (t - interval '10 minutes')::date, (t - interval '10 minutes')::time,"
        " '/media/old.jpg' FROM (SELECT LOCALTIMESTAMP AS t) now_here"
    )
    browsing.log_in(console, stack.http, "/", "olga", PASSWORD)
    expect_live(console)
    sound_on(console)
    console.wait_for_function("() => window.__played.length >= 2", timeout=12_000)
    assert all(src.endswith("/static/audio.wav") for src in console.evaluate("window.__played"))

    old = console.locator("#violation-rows tr.violation", has_text="/media/old.jpg")
    old.get_by_role("button", name="Acknowledge").click()
    expect(console.locator("#violation-rows tr.violation")).to_contain_text("Acknowledged by olga")
    console.evaluate("window.__played = []")
    console.wait_for_timeout(7_000)
    assert console.evaluate("window.__played") == [], "no reminder once it is acknowledged"


def test_a_kind_with_its_own_sound_plays_it_and_the_others_the_default(stack, console, pg) -> None:
    ViolationKind.objects.filter(slug="loto").update(sound="realtime/sounds/two-tone.wav")
    browsing.log_in(console, stack.http, "/", "olga", PASSWORD)
    for _ in range(20):  # the server reads the kinds again within 5 s
        if "two-tone.wav" in console.locator("#kind-sounds").text_content():
            break
        console.wait_for_timeout(500)
        console.reload()
    expect_live(console)
    sound_on(console)
    insert_violation(pg, "violation_lotodetections", camera_id=41)
    console.wait_for_function("() => window.__played.length === 1", timeout=5_000)
    console.wait_for_timeout(2_500)  # the next burst
    insert_violation(pg, "violation_ppedetections", camera_id=42)
    console.wait_for_function("() => window.__played.length === 2", timeout=5_000)
    played = console.evaluate("window.__played")
    assert played[0].endswith("/static/realtime/sounds/two-tone.wav"), played
    assert played[1].endswith("/static/audio.wav"), played
    sound = console.request.get("/static/realtime/sounds/two-tone.wav")
    assert sound.ok and sound.headers["content-type"].startswith("audio/")
