"""The live table's script speaks the browser's language (Accept-Language): the words it
sets itself (the connection state, the bulk button with its count, a row's age) come from
the /jsi18n/ catalog. Real Chromium, real Daphne.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests import browsing
from tests.helpers import memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

stack = memory_stack("i18n-js")


@pytest.mark.parametrize(
    ("locale", "live", "selected", "age"),
    [
        ("de-DE", "Live", "Ausgewählte quittieren (2)", "vor 7 Min."),
        ("es-ES", "En vivo", "Reconocer seleccionadas (2)", "hace 7 min"),
        ("en-US", "Live", "Acknowledge selected (2)", "7 min ago"),
    ],
)
def test_the_live_tables_script_speaks_the_browsers_language(
    stack, browser: Browser, pg, locale: str, live: str, selected: str, age: str
) -> None:
    browsing.browser_user("anna")
    # Two violations seen 7.5 minutes ago, in the plant's local time (as the detectors write).
    pg.execute(
        "INSERT INTO violation_ppedetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " SELECT camera, (t - interval '7 minutes 30 seconds')::date,"
        " (t - interval '7 minutes 30 seconds')::time, '/media/aged.jpg'"
        " FROM (SELECT now() AT TIME ZONE current_setting('TimeZone') AS t) now_here,"
        " generate_series(5, 6) AS camera"
    )
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        browsing.log_in(page, stack.http, "/", "anna", browsing.PASSWORD)
        expect(page.locator("#connection-state")).to_have_text(live, timeout=10_000)
        boxes = page.locator("#violation-rows input.select-violation")
        expect(boxes).to_have_count(2)
        for n in range(2):
            boxes.nth(n).check()
        expect(page.locator("#acknowledge-selected")).to_have_text(selected)
        expect(page.locator("#violation-rows .age").first).to_have_text(age)
    finally:
        context.close()
