"""The dashboard's reads: keyset pages across kinds, and counters over the chart's 24 hours."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

ROW = re.compile(r'<tr id="violation-(\w+)-(\d+)"')
KINDS = {
    "violation_humandetections": "human",
    "violation_lotodetections": "loto",
    "violation_ppedetections": "ppe",
}


@pytest.fixture
def client() -> Client:
    user = get_user_model().objects.create_user("pager", password="a-long-password-1")
    client = Client()
    client.force_login(user)
    return client


def insert(
    pg: Any, table: str, day: str | None, at: str | None, camera: int = 1
) -> tuple[str, int]:
    row = pg.execute(
        f"INSERT INTO {table} (camera_id, violation_date, violation_time, violation_image)"
        " VALUES (%s, %s, %s, '/media/p.jpg') RETURNING id",
        [camera, day, at],
    ).fetchone()
    return KINDS[table], int(row[0])


def expected_order(rows: list[tuple[str, int, str | None, str | None]]) -> list[tuple[str, int]]:
    def key(row: tuple[str, int, str | None, str | None]) -> tuple[str, str, str, int]:
        kind, pk, day, at = row
        # No date: oldest; no time: the start of its day (rows.Cursor, violations.page).
        return (day or "0000-00-00", at or "00:00:00", kind, pk)

    return [(kind, pk) for kind, pk, _, _ in sorted(rows, key=key, reverse=True)]


def rows_of(html: str) -> list[tuple[str, int]]:
    return [(kind, int(pk)) for kind, pk in ROW.findall(html)]


def next_before(html: str) -> str | None:
    found = re.search(r'before=([^"&]+)"', html)
    return None if found is None else found.group(1)


def all_pages(client: Client, query: str = "") -> list[tuple[str, int]]:
    html = client.get(f"/?{query}").content.decode()
    seen = rows_of(html)
    while (before := next_before(html)) is not None:
        html = client.get(f"/rows/?{query}&before={before}").content.decode()
        seen += rows_of(html)
    return seen


def test_pages_follow_the_sort_key_across_kinds_with_ties_and_nulls(pg, client) -> None:
    made = []
    for n in range(40):
        for table in KINDS:
            # The same date and time in every table (ties broken by kind, then id), times
            # with and without fractions, rows without a date or a time.
            day = None if n % 13 == 0 else f"2025-03-{1 + n % 5:02d}"
            at = None if n % 7 == 0 else f"10:{n % 4:02d}:00" + (".5" if n % 2 else "")
            kind, pk = insert(pg, table, day, at)
            made.append((kind, pk, day, at and (at if "." not in at else at + "00000")))
    assert all_pages(client) == expected_order(made)
    only_ppe = [(k, pk, d, t) for k, pk, d, t in made if k == "ppe"]
    assert all_pages(client, "kind=ppe") == expected_order(only_ppe)


def test_a_row_deleted_between_two_pages_skips_nothing(pg, client) -> None:
    made = [
        (*insert(pg, "violation_lotodetections", "2025-01-01", f"09:00:{s:02d}"),)
        for s in range(55)
    ]
    first = client.get("/").content.decode()
    shown = rows_of(first)
    assert len(shown) == 50
    # The last row shown, where the next page starts, is deleted meanwhile (OFFSET would
    # now skip one row).
    boundary = shown[-1]
    pg.execute("DELETE FROM violation_lotodetections WHERE id = %s", [boundary[1]])
    rest = rows_of(client.get(f"/rows/?before={next_before(first)}").content.decode())
    assert shown + rest == [(k, pk) for k, pk in sorted(made, key=lambda r: r[1], reverse=True)]


def test_rows_without_a_cursor_is_the_first_page(pg, client) -> None:
    insert(pg, "violation_humandetections", "2025-01-01", "10:00:00")
    assert rows_of(client.get("/rows/").content.decode()) == rows_of(
        client.get("/").content.decode()
    )


def local(when: datetime) -> tuple[str, str]:
    at = timezone.localtime(when)
    return at.date().isoformat(), at.time().isoformat(timespec="seconds")


def count_of(html: str, kind: str) -> int:
    found = re.search(rf'<span class="count" data-kind="{kind}">(\d+)</span>', html)
    assert found is not None
    return int(found.group(1))


def test_counters_count_unacknowledged_violations_of_the_charts_24_hours(pg, client) -> None:
    now = timezone.now()
    insert(pg, "violation_ppedetections", *local(now - timedelta(hours=25)))
    insert(pg, "violation_ppedetections", *local(now - timedelta(hours=23)))
    insert(pg, "violation_ppedetections", *local(now - timedelta(minutes=1)), camera=7)
    _, acknowledged = insert(pg, "violation_ppedetections", *local(now - timedelta(hours=1)))
    client.post(f"/violations/ppe/{acknowledged}/acknowledge/")
    insert(pg, "violation_ppedetections", None, None)
    page = client.get("/").content.decode()
    assert count_of(page, "ppe") == 2 and count_of(page, "human") == 0
    since = timezone.localtime(now).replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    assert f"unacknowledged since {since:%H:%M}" in page, "the chart's window, named"
    assert count_of(client.get("/counters/").content.decode(), "ppe") == 2
    assert count_of(client.get("/counters/?camera=7").content.decode(), "ppe") == 1
    assert client.get("/counters/?camera=²").status_code == 400
