"""/notifications/ in Debian's Chromium on a real Daphne: the failed message first and sent
again with one click, on a desk (1280x800) and a phone (390x844) with nothing to scroll
sideways, however long a path or an error.

Screenshots are saved under artifacts/screenshots/ (notifications-desk.png,
notifications-phone.png).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import Page, expect

from realtime.alerts.models import Contact, Notification
from tests import browsing
from tests.browsing import SCREENSHOTS
from tests.helpers import insert_violation, memory_stack
from tests.outbox_rows import key, message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_PATH = "/media/" + "north-hall-loading-dock-camera-07/" * 3 + "2026-12-01T00-50-12.jpg"
LONG_ERROR = (
    "Apprise: json://hooks.plant.example/alerts/north-hall-loading-dock answered HTTP 503"
    " Service Unavailable after 30 s; the receiver said: upstream-connect-error-or-disconnect"
)

# The page alone: no sender acts on what it shows (tests/test_alerts.py has the sender).
stack = memory_stack("notifications", REALTIME_EMBEDDED_NOTIFY="0")


def an_outbox(pg: Any) -> tuple[int, int]:
    """A failed message, a consolidated one of twelve, an escalation being retried and a
    cancelled one; returns the failed one's number and a violation of two messages."""
    Contact.objects.create(name="safety-team", url="mailto:safety@plant.example")
    rows = [
        insert_violation(pg, "violation_ppedetections", camera_id=1 + n % 5, image=LONG_PATH)
        for n in range(12)
    ]
    failed = message(
        [("ppe", rows[0], 1)],
        status=Notification.FAILED,
        minutes_ago=60,
        attempts=8,
        last_error=LONG_ERROR,
    )
    message([("ppe", row, 1 + n % 5) for n, row in enumerate(rows)], rule="ppe-north-consolidated")
    message(
        [("ppe", rows[1], 2)],
        status=Notification.PENDING,
        batched=False,
        step=1,
        contact="supervisor-on-call-north-hall",
        minutes_ago=5,
        attempts=2,
        last_error="timed out",
    )
    message(
        [("ppe", rows[2], 3)],
        status=Notification.CANCELLED,
        batched=False,
        step=2,
        minutes_ago=30,
        cancelled_because="acknowledged",
    )
    return key(failed), rows[1]


def no_sideways_scroll(page: Page, width: int, items: str = ".message") -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "scrolls sideways"
    boxes = page.locator(items).evaluate_all(
        "items => items.map(item => item.getBoundingClientRect().right)"
    )
    assert boxes and max(boxes) <= width, f"a message sticks out: {boxes}"


def test_the_messages_page_on_a_desk_and_a_phone(stack, page: Page, pg) -> None:
    user = browsing.browser_user("nora")
    user.user_permissions.add(Permission.objects.get(codename="view_notifications"))
    failed, violation = an_outbox(pg)
    browsing.log_in(page, stack.http, "/", "nora", browsing.PASSWORD)
    page.click("#notifications-link")
    messages = page.locator("#messages > li")
    expect(messages).to_have_count(4)
    first = messages.first
    expect(first).to_have_attribute("id", f"message-{failed}")
    expect(first.locator(".message-status")).to_have_text("failed")
    expect(first).to_contain_text("after 8 attempts")
    expect(messages.nth(1).locator(".message-more")).to_have_text("and 2 more violations")
    expect(messages.nth(2)).to_contain_text("retrying")
    expect(messages.nth(2)).to_contain_text("escalation 1")
    no_sideways_scroll(page, 1280)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "notifications-desk.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    no_sideways_scroll(page, 390)
    button = first.get_by_role("button", name="Resend")
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.screenshot(path=SCREENSHOTS / "notifications-phone.png", full_page=True)

    button.click()
    expect(page.locator(".messagelist")).to_contain_text(f"Message {failed} will be sent again.")
    expect(page.locator(f"#message-{failed} .message-status")).to_have_text("pending")
    expect(page.locator(".message-resend")).to_have_count(0)
    # A violation's own: to whom, by which rule and step, and how it went.
    page.goto(f"{stack.http}/violations/ppe/{violation}/")
    sent = page.locator("#notifications > li")
    expect(sent).to_have_count(2)
    expect(sent.first).to_contain_text(
        "To supervisor-on-call-north-hall by the rule ppe-everywhere, escalation 1: retrying"
    )
    no_sideways_scroll(page, 390, "#notifications > li")
    page.screenshot(path=SCREENSHOTS / "notifications-detail.png", full_page=True)
    statuses = set(Notification.objects.filter(batch=failed).values_list("status", flat=True))
    assert statuses == {Notification.PENDING}
