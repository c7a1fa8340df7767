"""Screen readers and contrast (issue 24): axe-core, vendored (tests/vendor/), finds no
serious or critical WCAG 2.1 A/AA violation on the live table, an open detail, /history/,
a violation's page, /notifications/ and the login, light and dark, and in German. Real
Chromium, real Daphne.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import Browser, Page, expect

from realtime.alerts.models import Notification
from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import ROOT, Stack, insert_violation, memory_stack
from tests.outbox_rows import message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = ROOT / "tests" / "vendor" / "axe-core-4.14.1" / "axe.min.js"
RUN_AXE = """async () => {
  const result = await axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
  });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 5).map(
                     (n) => `${n.target.join(" ")}: ${(n.any[0] || {}).message || ""}`) }));
}"""


stack = memory_stack("a11y")


def serious_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    return list(page.evaluate(RUN_AXE))


@pytest.mark.parametrize(
    ("scheme", "locale"),
    [("light", "en-US"), ("dark", "en-US"), ("light", "de-DE")],
    ids=["light", "dark", "german"],
)
def test_axe_finds_nothing_serious_on_any_page(
    stack: Stack, browser: Browser, pg: Any, scheme: str, locale: str
) -> None:
    operator = browsing.browser_user("operator")
    operator.user_permissions.add(Permission.objects.get(codename="view_notifications"))
    acknowledged = insert_violation(pg, "violation_ppedetections", camera_id=2)
    # What was sent about it: a message that failed and one that was sent (/notifications/).
    message([("ppe", acknowledged, 2)], status=Notification.FAILED, attempts=3, last_error="503")
    message([("ppe", acknowledged, 2)], step=1)
    insert_violation(pg, "violation_lotodetections", camera_id=3)
    insert_violation(pg, "violation_humandetections", camera_id=4)
    pg.execute(
        "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
        " acknowledged_at, note, noted_by, noted_at) VALUES ('violation_ppedetections', %s,"
        " 'operator', now(), 'Checked on site', 'operator', now())",
        [acknowledged],
    )
    # Only so that axe can be injected: the pages' own scripts run under their CSP elsewhere.
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        color_scheme=scheme,  # type: ignore[arg-type]
        bypass_csp=True,
        locale=locale,
    )
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        page.goto(f"{stack.http}/accounts/login/")
        found["login"] = serious_violations(page)
        browsing.log_in(page, stack.http, "/", "operator", browsing.PASSWORD)
        expect_live(page)
        found["live table"] = serious_violations(page)
        # A table that is not live (offline here; stale looks the same) is still read: its
        # rows are what the operator has until the stream is back.
        context.set_offline(True)
        expect(page.locator("body")).to_have_attribute("data-connection", "offline")
        found["offline table"] = serious_violations(page)
        page.screenshot(path=SCREENSHOTS / f"a11y-offline-{scheme}-{locale}.png")
        for width, height in [(1920, 1080), (390, 844)]:
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=SCREENSHOTS / f"a11y-offline-{scheme}-{locale}-{width}.png")
        page.set_viewport_size({"width": 1280, "height": 800})
        context.set_offline(False)
        expect_live(page)
        # Rows just arrived (highlighted) and a late one (marked): still readable.
        insert_violation(pg, "violation_humandetections", camera_id=5)
        pg.execute(
            "INSERT INTO violation_ppedetections (camera_id, violation_date, violation_time,"
            " violation_image) VALUES (6, current_date - 1, localtime, '/media/late.jpg')"
        )
        expect(page.locator("#violation-rows tr.is-late")).to_have_count(1)
        found["arrived and late rows"] = serious_violations(page)
        page.locator("#violation-rows tr.violation td.field-camera").first.click()
        expect(page.locator("#violation-dialog")).to_be_visible()
        found["detail dialog"] = serious_violations(page)
        page.goto(f"{stack.http}/history/")
        found["history"] = serious_violations(page)
        page.goto(f"{stack.http}/violations/ppe/{acknowledged}/")
        found["violation page"] = serious_violations(page)
        page.screenshot(path=SCREENSHOTS / f"a11y-violation-page-{scheme}-{locale}.png")
        page.goto(f"{stack.http}/notifications/")
        found["messages"] = serious_violations(page)
        page.screenshot(path=SCREENSHOTS / f"a11y-notifications-{scheme}-{locale}.png")
    finally:
        context.close()
    assert not {name: v for name, v in found.items() if v}
