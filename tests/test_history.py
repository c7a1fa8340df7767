"""The history (/history/) and a violation's page, on real PostgreSQL: the three built-in
kinds and an adopted one with columns of its own (tests/history_rows.py)."""

from __future__ import annotations

import random
import re

import pytest
from django.test import Client

from tests.history_rows import TABLES, acknowledge, all_pages, at, expected, insert

pytestmark = pytest.mark.django_db(transaction=True)

FILTERS = {
    "": lambda r: True,
    "kind=fire": lambda r: r[0] == "fire",
    "camera=2": lambda r: r[4] == 2,
    "acknowledged=1": lambda r: r[5],
    "acknowledged=0": lambda r: not r[5],
    "from=2025-03-02&to=2025-03-03": lambda r: "2025-03-02" <= (r[2] or "") <= "2025-03-03",
    "from=2025-03-02T12:00": lambda r: at(r[2], r[3]) >= "2025-03-02T12:00:00",
    "to=2025-03-03T06:30:00.5": lambda r: at(r[2], r[3]) < "2025-03-03T06:30:00.500000",
    "from=2025-03-01T10:00&to=2025-03-04&kind=ppe&camera=3&acknowledged=0": lambda r: (
        "2025-03-01T10:00:00" <= at(r[2], r[3]) < "2025-03-05"
        and r[0] == "ppe"
        and r[4] == 3
        and not r[5]
    ),
}


@pytest.mark.parametrize("query", list(FILTERS))
def test_the_filters_return_exactly_the_matching_rows_across_kinds_and_pages(
    historian, made_rows, query
) -> None:
    wanted = expected(made_rows, FILTERS[query])
    assert wanted, "the filter matches something"
    assert all_pages(historian, query) == wanted


def test_a_to_date_includes_that_whole_day_and_from_is_included(pg, historian) -> None:
    inside = [
        insert(pg, "loto", "2025-05-01", "00:00:00"),
        insert(pg, "loto", "2025-05-02", "23:59:59"),
        insert(pg, "ppe", "2025-05-02", "23:59:59.999999"),
    ]
    insert(pg, "ppe", "2025-05-03", "00:00:00")
    insert(pg, "ppe", "2025-04-30", "23:59:59.999999")
    insert(pg, "human", None, None)
    shown = {pk for _, pk in all_pages(historian, "from=2025-05-01&to=2025-05-02")}
    assert shown == set(inside)
    # A `to` date-time ends the range there; an offset is converted to the plant's time.
    shown = {pk for _, pk in all_pages(historian, "from=2025-05-01&to=2025-05-02T23:59:59")}
    assert shown == set(inside[:1])
    assert {pk for _, pk in all_pages(historian, "from=2025-05-01T00:00:00Z&to=2025-05-02")} == set(
        inside
    )


def test_no_row_twice_or_skipped_while_rows_are_inserted_and_deleted(
    pg, historian, made_rows
) -> None:
    existing = expected(made_rows)
    rng = random.Random(3)
    deleted: set[tuple[str, int]] = set()
    added: list[tuple[str, int]] = []

    def meanwhile() -> None:
        # New rows, newer than all, older than all and in the middle; deletions anywhere.
        for day in ("2025-03-09", "2025-02-01", "2025-03-03"):
            kind = rng.choice(list(TABLES))
            added.append((kind, insert(pg, kind, day, "12:00:00.25")))
        for kind, pk in rng.sample(existing, 4):
            pg.execute(f"DELETE FROM {TABLES[kind]} WHERE id = %s", [pk])
            deleted.add((kind, pk))

    seen = all_pages(historian, "", between=meanwhile)
    assert len(seen) == len(set(seen)), "no row twice"
    shown = set(seen)
    # Every row there all along is shown, and no row deleted before its page was read.
    assert [row for row in existing if row not in deleted] == [
        row for row in seen if row in set(existing) - deleted
    ]
    assert shown <= set(existing) | set(added) | deleted


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday", "from must be an ISO date or date-time"),
        ("from=2025-13-01", "from must be an ISO date"),
        ("to=2025-02-30", "to must be an ISO date"),
        ("from=%EF%BC%92025-01-01", "from must be an ISO date"),
        ("from=2025-03-02&to=2025-03-01", "from must be before to"),
        ("camera=seven", "camera must be a camera number"),
        ("kind=nope", "kind must be one of"),
        ("acknowledged=yes", "acknowledged must be 1"),
        ("acknowledged=1&unacknowledged=1", "exclude each other"),
        ("before=nonsense", "before must be a cursor"),
        # At the calendar's ends the chart's hours and days would run out of years.
        ("to=0001-01-01T05:00", "to must be between 0001-01-02 and 9999-11-30"),
        ("from=9990-01-01&to=9999-12-31T23:00", "to must be between"),
        ("from=9999-12-31T00:00&to=9999-12-31T23:30", "from must be between"),
    ],
)
def test_bad_filters_get_a_400_that_says_why(historian, query, message) -> None:
    for path in ("/history/", "/history/export.csv"):
        if path.endswith(".csv") and "before=" in query:
            continue  # the export has no pages
        response = historian.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert response["Content-Type"].startswith("text/plain")
        assert message in response.content.decode(), response.content


def test_a_violation_has_a_page_with_every_column_and_its_acknowledgement(
    pg, historian, fire_kind, token
) -> None:
    pk = insert(
        pg,
        "fire",
        "2025-03-01",
        "10:11:12.345678",
        4,
        temperature=81.5,
        zone="Hall <B>",
        tags=["smoke", "heat"],
    )
    acknowledge(pg, "fire", pk, by="bert")
    page = historian.get(f"/violations/fire/{pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    for name, value in [
        ("id", str(pk)),
        ("camera_id", "4"),
        ("violation_date", "2025-03-01"),
        ("violation_time", "10:11:12.345678"),
        ("temperature", "81.5"),
        ("zone", "Hall &lt;B&gt;"),
        ("tags", "[&quot;smoke&quot;, &quot;heat&quot;]"),
    ]:
        assert re.search(rf"<th scope=\"row\">{name}</th><td[^>]*>{re.escape(value)}</td>", html)
    assert "Acknowledged by <strong>bert</strong>" in html
    assert "/media/fire-2025-03-01-10:11:12.345678.jpg" in html
    # Shareable: a token opens it as it opens the live table; nobody else does.
    with_token = Client().get(
        f"/violations/fire/{pk}/", headers={"Authorization": f"Bearer {token}"}
    )
    assert with_token.status_code == 200
    assert Client().get(f"/violations/fire/{pk}/").status_code == 302
    assert historian.get(f"/violations/fire/{pk + 1}/").status_code == 404
    assert historian.get("/violations/smoke/1/").status_code == 404
    assert historian.get(f"/violations/fire/{2**63}/").status_code == 404


def test_rows_of_the_history_and_the_live_table_link_to_their_page(pg, historian) -> None:
    pk = insert(pg, "ppe", "2025-03-01", "08:00:00")
    link = f'href="/violations/ppe/{pk}/"'
    assert link in historian.get("/history/").content.decode()
    assert link in historian.get("/").content.decode()


def test_older_pages_do_not_count_the_chart_again(historian, made_rows) -> None:
    first = historian.get("/history/").content.decode()
    assert '<section id="trend"' in first
    older = re.search(r'id="older-page" rel="next" href="([^"]+)"', first)
    assert older is not None
    page = historian.get(older.group(1).replace("&amp;", "&")).content.decode()
    assert '<section id="trend"' not in page and "Newest (and the chart)" in page
