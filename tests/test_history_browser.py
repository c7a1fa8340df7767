"""The history, the export and the trend chart served by a real Daphne on a database the
detectors made (tests/fixtures/detectors_schema.sql: 225,000 rows with columns of their
own and fractions of seconds), the pages in Debian's Chromium.

Screenshots are saved under artifacts/screenshots/ (docs/history.png, docs/trend.png and
docs/violation-detail.png are copies).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import Stack, manage, scratch_database

pytestmark = [pytest.mark.e2e]

SCHEMA = (Path(__file__).resolve().parent / "fixtures" / "detectors_schema.sql").read_text()
PASSWORD = "a-long-password-1"
# The fixture's human rows n = 1..100,000: day n // 2000 after 2024-01-01, 06:00 + n/4 s.
HUNDRED_THOUSAND = "kind=human&to=2024-02-20T12:56:40.1"


class Adopted:
    def __init__(self, url: str, stack: Stack, token: str) -> None:
        self.url, self.stack, self.token = url, stack, token

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return [tuple(row) for row in cur.fetchall()] if cur.description else []


@pytest.fixture(scope="module")
def adopted(db_url: str, tmp_path_factory: Any) -> Iterator[Adopted]:
    with scratch_database(db_url, f"history_{uuid.uuid4().hex[:8]}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        manage(url, "migrate", "--noinput")
        manage(url, "create_indexes")  # docs/how-to/detectors-database.md
        manage(
            url,
            "createsuperuser",
            "--noinput",
            DJANGO_SUPERUSER_USERNAME="operator",
            DJANGO_SUPERUSER_EMAIL="operator@example.com",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )
        token = manage(url, "issue_token", "operator").strip().splitlines()[-1]
        stack = Stack.start("memory", url, None, tmp_path_factory.mktemp("history"))
        try:
            yield Adopted(url, stack, token)
        finally:
            stack.stop()


def log_in(page: Page, adopted: Adopted, path: str) -> None:
    browsing.log_in(page, adopted.stack.http, path, "operator", PASSWORD)


def recent_rows(adopted: Adopted) -> None:
    """Some violations of the last hours, so the chart has something to show."""
    now = timezone.localtime()
    for hours, table, camera in [
        (1, "violation_ppedetections", 7),
        (2, "violation_humandetections", 3),
        (2, "violation_ppedetections", 7),
        (5, "violation_lotodetections", 2),
        (9, "violation_humandetections", 7),
        (9, "violation_humandetections", 3),
        (14, "violation_ppedetections", 7),
        (20, "violation_lotodetections", 4),
    ]:
        at = now - timedelta(hours=hours)
        adopted.sql(
            f"INSERT INTO {table} (camera_id, violation_date, violation_time, violation_image)"
            " VALUES (%s, %s, %s, %s)",
            [camera, at.date(), at.time(), f"/media/cam{camera}/recent-{hours}.jpg"],
        )


def test_a_live_row_makes_the_current_hours_bar_grow(adopted, page) -> None:
    recent_rows(adopted)
    log_in(page, adopted, "/")
    expect_live(page)
    trend = page.locator("#trend")
    hour = trend.get_attribute("data-last-bucket")
    segment = trend.locator(f'.trend-bar[data-bucket="{hour}"] .trend-segment[data-kind="human"]')
    before = int(segment.get_attribute("data-count") or "")
    height = float(segment.locator("rect").first.get_attribute("height") or "")
    for n in range(2):
        adopted.sql(
            "INSERT INTO violation_humandetections (camera_id, violation_image, confidence)"
            " VALUES (4, %s, 0.9)",
            [f"/media/cam4/live-{n}.jpg"],
        )
    # Without a reload: live.js adds each new row to its hour's bar.
    expect(segment).to_have_attribute("data-count", str(before + 2), timeout=5_000)
    grown = float(segment.locator("rect").first.get_attribute("height") or "")
    assert grown > height
    expect(segment.locator("title")).to_have_text(re.compile(rf": {before + 2}$"))
    cell = trend.locator(f'tr[data-bucket="{hour}"] td[data-kind="human"]')
    expect(cell).to_have_text(str(before + 2))
    # And the server, drawing the chart anew, counts the same.
    fragment = httpx.get(
        adopted.stack.http + "/trend/",
        headers={"Authorization": f"Bearer {adopted.token}"},
        timeout=10,
    ).text
    assert re.search(
        rf'data-bucket="{hour}">.*?data-kind="human" data-count="{before + 2}"', fragment, re.S
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "trend.png")
    # A bar that would outgrow the scale has the server draw the chart anew (htmx).
    scale = int(trend.get_attribute("data-scale-max") or "")
    bar_total = sum(
        int(n or "0")
        for n in trend.locator(f'.trend-bar[data-bucket="{hour}"] .trend-segment').evaluate_all(
            "segments => segments.map(s => s.dataset.count)"
        )
    )
    more = scale - bar_total + 1
    for n in range(more):
        adopted.sql(
            "INSERT INTO violation_humandetections (camera_id, violation_image) VALUES (4, %s)",
            [f"/media/cam4/outgrow-{n}.jpg"],
        )
    expect(page.locator("#trend")).not_to_have_attribute(
        "data-scale-max", str(scale), timeout=5_000
    )
    expect(segment).to_have_attribute("data-count", str(before + 2 + more))


def test_the_history_pages_and_opens_a_violation(adopted, page) -> None:
    log_in(page, adopted, "/history/?from=2024-01-01&to=2024-03-31&camera=3")
    expect(page.locator("#trend h2")).to_contain_text("Violations per day")
    rows = page.locator("#violation-rows tr.violation")
    expect(rows).to_have_count(50)
    first_page = rows.first.get_attribute("id")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "history.png", full_page=False)
    page.click("#older-page")
    expect(rows).to_have_count(50)
    assert rows.first.get_attribute("id") != first_page
    assert "camera=3" in page.url and "before=" in page.url
    link = rows.first.locator(".row-link")
    row_id = (link.text_content() or "").lstrip("#")
    link.click()
    expect(page).to_have_url(re.compile(rf"/violations/(human|loto|ppe)/{row_id}/$"))
    columns = page.locator(".detail-columns")
    expect(columns.locator("tr", has_text="camera_id")).to_contain_text("3")
    expect(page.locator("#acknowledgement")).to_contain_text("Not acknowledged")
    page.screenshot(path=SCREENSHOTS / "violation-detail.png", full_page=True)


def test_a_human_rows_page_shows_the_detectors_columns(adopted, page) -> None:
    log_in(page, adopted, "/violations/human/12345/")
    columns = page.locator(".detail-columns")
    [(confidence, zone, time_text)] = adopted.sql(
        "SELECT confidence::text, zone, violation_time::text FROM violation_humandetections"
        " WHERE id = 12345"
    )
    expect(columns.locator("tr", has_text="confidence")).to_contain_text(confidence)
    expect(columns.locator("tr", has_text="zone")).to_contain_text(zone)
    expect(columns.locator(".detail-violation_time")).to_have_text(time_text)


def test_the_export_of_100000_rows_streams_and_parses_back_to_the_same_rows(adopted) -> None:
    chunks = 0
    body = io.BytesIO()
    with httpx.stream(
        "GET",
        f"{adopted.stack.http}/history/export.csv?{HUNDRED_THOUSAND}",
        headers={"Authorization": f"Bearer {adopted.token}"},
        timeout=httpx.Timeout(30, read=60),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"].startswith("attachment; filename=")
        for chunk in response.iter_raw():
            chunks += 1
            body.write(chunk)
    assert chunks > 10, "streamed, not sent in one piece"
    reader = csv.reader(io.StringIO(body.getvalue().decode("utf-8-sig"), newline=""))
    header = next(reader)
    assert header[:9] == [
        "kind", "table", "id", "camera_id", "violation_date", "violation_time",
        "violation_image", "acknowledged_by", "acknowledged_at",
    ]  # fmt: skip
    # The detectors' columns, kind by kind: only human's here (kind=human).
    assert header[9:] == ["confidence", "zone"]
    got = [(int(r[2]), r[3], r[4], r[5], r[6], r[9], r[10]) for r in reader]
    assert len(got) == 100_000
    wanted = adopted.sql(
        "SELECT id, camera_id::text, violation_date::text, violation_time::text,"
        " violation_image, coalesce(confidence::text, ''), coalesce(zone, '')"
        " FROM violation_humandetections WHERE id <= 100000"
        " ORDER BY violation_date DESC, violation_time DESC, id DESC"
    )
    assert got == wanted
