"""The operator's language (issue 24): English, German and Spanish, chosen by the browser's
Accept-Language unless the user picked one with the selector; `<html lang>` says which;
dates as the language writes them, times in 24 hours; the rows that arrive live are drawn
in each screen's own language (a stream per language). Real Daphne and Chromium for the
live parts; screenshots: artifacts/screenshots/i18n-*.png.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, expect

from tests import browsing
from tests.browsing import SCREENSHOTS
from tests.helpers import Stack, event_number, memory_stack, newest_event, sse

pytestmark = [pytest.mark.django_db(transaction=True)]

stack = memory_stack("i18n")

# What each language calls a few things on the live table (locale/*/LC_MESSAGES/django.po).
WORDS = {
    "en": {"title": "Live violations", "button": "Acknowledge", "kind": "Person in zone"},
    "de": {"title": "Live-Verstöße", "button": "Quittieren", "kind": "Person im Bereich"},
    "es": {"title": "Infracciones en vivo", "button": "Reconocer", "kind": "Persona en zona"},
}
DAY = date(2026, 3, 9)
# The day as each language writes it: ISO in English, as the console always did.
DAY_TEXT = {"en": "2026-03-09", "de": "09.03.2026", "es": "09/03/2026"}


@pytest.fixture
def operator_client() -> Client:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user("ines", password="a-long-password-1"))
    return client


def a_violation(pg: Any) -> int:
    """A person in the zone on DAY, at the time of day it is now."""
    row = pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " VALUES (3, %s, LOCALTIME(0), '/media/i18n.jpg') RETURNING id",
        [DAY],
    ).fetchone()
    return int(row[0])


@pytest.mark.parametrize("language", ["en", "de", "es"])
def test_the_live_table_speaks_the_browsers_language(
    operator_client: Client, pg: Any, language: str
) -> None:
    a_violation(pg)
    accept = {"en": "en-US,en;q=0.9", "de": "de-DE,de;q=0.9,en;q=0.5", "es": "es-ES,es;q=0.9"}
    page = operator_client.get("/", headers={"Accept-Language": accept[language]}).content.decode()
    assert f'<html lang="{language}"' in page
    words = WORDS[language]
    assert f"<h1>{words['title']}" in page
    assert f">{words['button']}</button>" in page
    assert f'<span class="kind-badge">{words["kind"]}</span>' in page
    assert f'<td class="field-date nowrap">{DAY_TEXT[language]}</td>' in page
    if language != "en":
        for english in ("Acknowledge the rows in view", "Shelved cameras", "Hide acknowledged"):
            assert english not in page, f"{english!r} left in English"


def test_the_users_choice_outweighs_the_browsers(operator_client: Client) -> None:
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    chosen = operator_client.post(
        "/i18n/setlang/", {"language": "es", "next": "/history/"}, headers=german
    )
    assert chosen.status_code == 302 and chosen["Location"] == "/history/"
    page = operator_client.get("/history/", headers=german).content.decode()
    assert '<html lang="es"' in page and "Historial" in page
    # The selector on every page offers each language, in its own words, the chosen one on.
    assert re.search(r'<option value="es" lang="es" selected>Español</option>', page)
    assert '<option value="de" lang="de">Deutsch</option>' in page
    # A language the product does not ship is refused, the choice left as it was.
    operator_client.post("/i18n/setlang/", {"language": "xx", "next": "/"}, headers=german)
    assert '<html lang="es"' in operator_client.get("/", headers=german).content.decode()


def test_form_errors_and_the_detail_speak_it_too(operator_client: Client, pg: Any) -> None:
    row = a_violation(pg)
    german = {"Accept-Language": "de"}
    refused = operator_client.post(
        f"/violations/human/{row}/shelve/", {"minutes": "0"}, headers=german
    )
    assert refused.status_code == 400
    limit = settings.REALTIME_SHELF_MAX_MINUTES
    assert refused.content.decode() == f"minutes muss eine ganze Zahl von 1 bis {limit} sein"
    detail = operator_client.get(f"/violations/human/{row}/", headers=german).content.decode()
    assert "Nicht quittiert." in detail and "Notiz" in detail
    assert "Not acknowledged" not in detail
    catalog = operator_client.get("/jsi18n/", headers=german)
    assert catalog.status_code == 200 and "django.catalog" in catalog.content.decode()
    manifest = operator_client.get("/manifest.webmanifest", headers=german).json()
    assert manifest["lang"] == "de" and manifest["name"] == "Sicherheitsverstöße"


async def test_each_screen_gets_the_live_rows_in_its_own_language(
    stack: Stack, pg: Any, token: str
) -> None:
    url = f"{stack.http}/events/violations/rows/"
    auth = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(newest_event(pg))}
    async with (
        sse(url, {**auth, "Accept-Language": "en-US"}) as english,
        sse(url, {**auth, "Accept-Language": "de-DE,de"}) as german,
        sse(url, {**auth, "Accept-Language": "es"}) as spanish,
    ):
        row = a_violation(pg)
        drawn = {}
        for language, stream in (("en", english), ("de", german), ("es", spanish)):
            event = await stream.next_event(15)
            while event.event != "message":
                event = await stream.next_event(15)
            assert f'id="violation-human-{row}"' in event.data
            drawn[language] = event
        for language, event in drawn.items():
            assert f">{WORDS[language]['button']}</button>" in event.data, language
            assert f">{DAY_TEXT[language]}</td>" in event.data, language
        # A screen that changes its language resumes where it was: the English stream's
        # last event id resumes the German stream (the same changes, drawn in German).
        resume = {"Authorization": auth["Authorization"], "Accept-Language": "de"}
        english_id = drawn["en"].id or ""
        resume["Last-Event-ID"] = english_id
        later = a_violation(pg)
        async with sse(url, resume) as switched:
            # (A resume may repeat the last change: the page drops what it has by id.)
            while (
                f'id="violation-human-{later}"' not in (event := await switched.next_event(15)).data
            ):
                assert event.event != "message" or f'id="violation-human-{row}"' in event.data
            assert ">Quittieren</button>" in event.data
            assert (event.id or "").startswith("table.de/")
            assert event_number(event.id or "") > event_number(english_id)


@pytest.mark.parametrize(
    ("locale", "language", "width", "height"),
    [("de-DE", "de", 1280, 800), ("es-ES", "es", 390, 844)],
    ids=["german-desk", "spanish-phone"],
)
def test_a_browser_in_german_or_spanish_gets_the_whole_console_in_it(
    stack: Stack, browser: Browser, pg: Any, locale: str, language: str, width: int, height: int
) -> None:
    for _ in range(20):
        a_violation(pg)
    browsing.browser_user("lucia")
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = context.new_page()
    try:
        browsing.log_in(page, stack.http, "/", "lucia", browsing.PASSWORD)
        assert page.get_attribute("html", "lang") == language
        expect(page.locator("h1")).to_contain_text(WORDS[language]["title"])
        expect(page.locator("body")).to_have_attribute("data-connection", "live", timeout=20_000)
        rows = page.locator("#violation-rows tr.violation")
        expect(rows).to_have_count(20)
        # A violation arriving live is drawn in the page's language, like the others.
        row = a_violation(pg)
        arrived = page.locator(f"#violation-human-{row}")
        expect(arrived.get_by_role("button", name=WORDS[language]["button"])).to_be_visible()
        expect(arrived.locator(".field-date")).to_have_text(DAY_TEXT[language])
        # Longer words keep the layout: no sideways scrolling, one line per row on a desk.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if width >= 1280:
            heights = rows.evaluate_all(
                "rows => rows.map((tr) => tr.getBoundingClientRect().height)"
            )
            assert max(heights) <= 40, f"rows of {max(heights):.0f} px"
        page.screenshot(path=SCREENSHOTS / f"i18n-{language}-{width}x{height}.png")
    finally:
        context.close()
