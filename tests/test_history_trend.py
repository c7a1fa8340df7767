"""The trend chart on real PostgreSQL: the live table's last 24 hours, the history's range
(per hour, day or month). Growing live in the browser: tests/test_history_browser.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.history_rows import insert, rows_of

pytestmark = pytest.mark.django_db(transaction=True)


def segments(html: str, bucket: str) -> dict[str, int]:
    bar = re.search(
        rf'<g class="trend-bar" data-bucket="{bucket}">(.*?)(?=<g class="trend-bar"|<line)',
        html,
        re.S,
    )
    assert bar is not None, f"no bar for {bucket}"
    return {
        k: int(n) for k, n in re.findall(r'data-kind="([\w-]+)" data-count="(\d+)"', bar.group(1))
    }


def local(when: datetime) -> tuple[str, str]:
    moment = timezone.localtime(when)
    return moment.date().isoformat(), moment.time().isoformat()


def test_the_live_tables_chart_counts_the_last_24_hours_per_hour_and_kind(pg, historian) -> None:
    now = timezone.now()
    for _ in range(3):
        insert(pg, "ppe", *local(now), camera=7)
    insert(pg, "human", *local(now), camera=2)
    two_hours_ago = now - timedelta(hours=2)
    insert(pg, "loto", *local(two_hours_ago), camera=7)
    insert(pg, "loto", *local(now - timedelta(hours=25)), camera=5)  # outside
    html = historian.get("/").content.decode()
    hour = timezone.localtime(now).strftime("%Y-%m-%dT%H")
    assert segments(html, hour) == {"human": 1, "loto": 0, "ppe": 3}
    assert segments(html, timezone.localtime(two_hours_ago).strftime("%Y-%m-%dT%H"))["loto"] == 1
    assert html.count('<g class="trend-bar"') == 24
    assert re.search(r'camera 7</a> \(4\), <a href="/\?camera=2">camera 2</a> \(1\)', html)
    top = re.search(r'<p class="trend-cameras">(.*?)</p>', html, re.S)
    assert top is not None and "camera 5" not in top.group(1), "its row is in the table, not here"
    # The fragment the page re-fetches, filtered as the page is.
    fragment = historian.get("/trend/?camera=7").content.decode()
    assert fragment.startswith('<section id="trend"')
    assert segments(fragment, hour) == {"human": 0, "loto": 0, "ppe": 3}


@pytest.mark.parametrize(
    ("query", "unit", "bars"),
    [
        ("from=2025-03-01T08:00&to=2025-03-01T16:00", "hour", 8),
        ("from=2025-03-01&to=2025-03-05", "day", 5),
        ("from=2024-01-01&to=2025-12-31", "month", 24),
    ],
)
def test_the_history_chart_is_per_hour_day_or_month_by_range(
    historian, made_rows, query, unit, bars
) -> None:
    html = historian.get(f"/history/?{query}").content.decode()
    assert f"Violations per {unit}" in html
    assert html.count('<g class="trend-bar"') == bars
    if unit == "day":
        for day in range(1, 6):
            counts = segments(html, f"2025-03-0{day}")
            wanted = [r for r in made_rows if r[2] == f"2025-03-0{day}"]
            assert sum(counts.values()) == len(wanted)
            assert counts["fire"] == len([r for r in wanted if r[0] == "fire"])


def test_a_range_too_long_to_chart_still_lists_its_rows(pg, historian) -> None:
    pk = insert(pg, "human", "1990-06-01", "12:00:00")
    html = historian.get("/history/?from=1900-01-01").content.decode()
    assert "too long to draw" in html
    assert rows_of(html) == [("human", pk)]


def counted(html: str) -> dict[str, int]:
    return {
        k: int(n) for k, n in re.findall(r'<span class="count" data-kind="([\w-]+)">(\d+)<', html)
    }


def charted(html: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for kind, n in re.findall(
        r'<g class="trend-segment" data-kind="([\w-]+)" data-count="(\d+)"', html
    ):
        found[kind] = found.get(kind, 0) + int(n)
    return found


def test_the_counters_and_the_chart_count_the_same_named_window(pg, historian) -> None:
    """Rows at both edges of the window, to the microsecond: the counters and the chart of
    one camera count the same rows, and both say which window it is."""
    from realtime.console import trend

    tiny = timedelta(microseconds=1)
    for _ in range(3):  # an hour may begin while the rows are written: then again
        since, until = trend.live_range()
        edges = {
            "ppe": [since - tiny, since, since + timedelta(seconds=0.5)],
            "human": [until - tiny, until, until + timedelta(minutes=1)],
            "loto": [since + timedelta(hours=5, microseconds=250_000)],
        }
        for kind, moments in edges.items():
            for moment in moments:
                insert(pg, kind, moment.date().isoformat(), moment.time().isoformat(), camera=11)
        insert(pg, "ppe", since.date().isoformat(), since.time().isoformat(), camera=12)
        counters = historian.get("/counters/?camera=11").content.decode()
        chart = historian.get("/trend/?camera=11").content.decode()
        if trend.live_range() == (since, until):
            break
        pg.execute(
            "TRUNCATE violation_ppedetections, violation_humandetections, violation_lotodetections"
        )
    assert counted(counters) == {"human": 1, "loto": 1, "ppe": 2}
    assert charted(chart) == counted(counters)
    words = f"since {since:%H:%M}"
    assert f"unacknowledged {words}" in counters
    assert re.search(rf'<h2 id="trend-heading">Violations per hour {words}\b', chart)
