"""The history (/history/), a violation's page, the CSV export and the trend chart, on real
PostgreSQL: the three built-in kinds and an adopted one with columns of its own."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from realtime import kinds
from realtime.models import ViolationKind

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The export streams asynchronously, as Daphne reads it; the test client is synchronous.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous"),
]

ROW = re.compile(r'<tr id="violation-([\w-]+)-(\d+)"')
TABLES = {
    "human": "violation_humandetections",
    "loto": "violation_lotodetections",
    "ppe": "violation_ppedetections",
    "fire": "violation_firedetections",
}
# A detectors' table the product adopts: columns of its own, times with fractions.
FIRE = """
CREATE TABLE IF NOT EXISTS violation_firedetections (
    id bigserial PRIMARY KEY, camera_id int, violation_date date, violation_time time(6),
    violation_image varchar(200), temperature real, zone text, tags text[]
)
"""


@pytest.fixture
def fire(pg: Any) -> Iterator[str]:
    pg.execute(FIRE)
    ViolationKind.objects.create(
        slug="fire", label="Fire", schema_name="public", table_name=TABLES["fire"], position=40
    )
    kinds.forget()
    yield "fire"
    pg.execute("DROP TABLE IF EXISTS violation_firedetections")


@pytest.fixture
def client() -> Client:
    user = get_user_model().objects.create_user("historian", password="a-long-password-1")
    client = Client()
    client.force_login(user)
    return client


def insert(
    pg: Any, kind: str, day: str | None, at: str | None, camera: int = 1, **extra: Any
) -> int:
    columns = ["camera_id", "violation_date", "violation_time", "violation_image", *extra]
    values = [camera, day, at, f"/media/{kind}-{day}-{at}.jpg", *extra.values()]
    row = pg.execute(
        f"INSERT INTO {TABLES[kind]} ({', '.join(columns)})"
        f" VALUES ({', '.join(['%s'] * len(values))}) RETURNING id",
        values,
    ).fetchone()
    return int(row[0])


def acknowledge(pg: Any, kind: str, pk: int, by: str = "anna") -> None:
    pg.execute(
        "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
        " acknowledged_at) VALUES (%s, %s, %s, now())",
        [TABLES[kind], pk, by],
    )


def rows_of(html: str) -> list[tuple[str, int]]:
    return [(kind, int(pk)) for kind, pk in ROW.findall(html)]


def all_pages(client: Client, query: str, between: Any = None) -> list[tuple[str, int]]:
    """Every row of /history/?query, following the Older links (calling `between` first)."""
    response = client.get(f"/history/?{query}")
    assert response.status_code == 200, response.content
    html = response.content.decode()
    seen = rows_of(html)
    while (older := re.search(r'id="older-page" rel="next" href="([^"]+)"', html)) is not None:
        if between is not None:
            between()
        html = client.get(older.group(1).replace("&amp;", "&")).content.decode()
        seen += rows_of(html)
    return seen


Made = tuple[str, int, str | None, str | None, int, bool]


def expected(made: list[Made], keep: Any = lambda row: True) -> list[tuple[str, int]]:
    def key(row: Made) -> tuple[str, str, str, int]:
        kind, pk, day, time, _, _ = row
        return (day or "0000-00-00", full(time), kind, pk)

    return [(r[0], r[1]) for r in sorted(filter(keep, made), key=key, reverse=True)]


def full(time: str | None) -> str:
    """A time to the microsecond, so that times compare as text."""
    time = time or "00:00:00"
    return (time if "." in time else time + ".").ljust(15, "0")


def at(day: str | None, time: str | None) -> str:
    return f"{day}T{full(time)}" if day else ""


@pytest.fixture
def made(pg: Any, fire: str) -> list[Made]:
    """Rows of four kinds over five days: ties, fractions, rows without date or time,
    cameras 1-3, every third acknowledged."""
    rng = random.Random(17)
    made: list[Made] = []
    for n in range(90):
        for kind in TABLES:
            day = None if n % 29 == 0 else f"2025-03-{1 + n % 5:02d}"
            time = None if n % 17 == 0 else f"{n % 24:02d}:{n % 60:02d}:{n % 3:02d}"
            if time and n % 2:
                time += f".{rng.randrange(1, 999999):06d}"
            camera = 1 + n % 3
            pk = insert(pg, kind, day, time, camera)
            acknowledged = n % 3 == 0
            if acknowledged:
                acknowledge(pg, kind, pk)
            made.append((kind, pk, day, time, camera, acknowledged))
    return made


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
    client, made, query
) -> None:
    wanted = expected(made, FILTERS[query])
    assert wanted, "the filter matches something"
    assert all_pages(client, query) == wanted


def test_a_to_date_includes_that_whole_day_and_from_is_included(pg, client) -> None:
    inside = [
        insert(pg, "loto", "2025-05-01", "00:00:00"),
        insert(pg, "loto", "2025-05-02", "23:59:59"),
        insert(pg, "ppe", "2025-05-02", "23:59:59.999999"),
    ]
    insert(pg, "ppe", "2025-05-03", "00:00:00")
    insert(pg, "ppe", "2025-04-30", "23:59:59.999999")
    insert(pg, "human", None, None)
    shown = {pk for _, pk in all_pages(client, "from=2025-05-01&to=2025-05-02")}
    assert shown == set(inside)
    # A `to` date-time ends the range there; an offset is converted to the plant's time.
    shown = {pk for _, pk in all_pages(client, "from=2025-05-01&to=2025-05-02T23:59:59")}
    assert shown == set(inside[:1])
    assert {pk for _, pk in all_pages(client, "from=2025-05-01T00:00:00Z&to=2025-05-02")} == set(
        inside
    )


def test_no_row_twice_or_skipped_while_rows_are_inserted_and_deleted(pg, client, made) -> None:
    existing = expected(made)
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

    seen = all_pages(client, "", between=meanwhile)
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
    ],
)
def test_bad_filters_get_a_400_that_says_why(client, query, message) -> None:
    for path in ("/history/", "/history/export.csv"):
        if path.endswith(".csv") and "before=" in query:
            continue  # the export has no pages
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert response["Content-Type"].startswith("text/plain")
        assert message in response.content.decode(), response.content


def test_a_violation_has_a_page_with_every_column_and_its_acknowledgement(
    pg, client, fire, token
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
    page = client.get(f"/violations/fire/{pk}/")
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
    assert client.get(f"/violations/fire/{pk + 1}/").status_code == 404
    assert client.get("/violations/smoke/1/").status_code == 404
    assert client.get(f"/violations/fire/{2**63}/").status_code == 404


def test_rows_of_the_history_and_the_live_table_link_to_their_page(pg, client) -> None:
    pk = insert(pg, "ppe", "2025-03-01", "08:00:00")
    link = f'href="/violations/ppe/{pk}/"'
    assert link in client.get("/history/").content.decode()
    assert link in client.get("/").content.decode()


def read_csv(response: Any) -> tuple[list[str], list[dict[str, str]]]:
    assert response.status_code == 200, response.content
    body = b"".join(response)
    assert body.startswith(b"\xef\xbb\xbf"), "a byte-order mark, for spreadsheet programs"
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, line, strict=True)) for line in reader]


def test_the_export_parses_back_to_the_same_rows(pg, client, made) -> None:
    hostile = insert(
        pg,
        "fire",
        "2025-03-02",
        "07:00:00.5",
        9,
        temperature=None,
        zone='a "quoted", line\nbreak é',
    )
    acknowledge(pg, "fire", hostile, by="Zoë")
    response = client.get("/history/export.csv?from=2025-03-02&to=2025-03-04")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="violations-20250302T0000-to-20250305T0000.csv"'
    )
    header, lines = read_csv(response)
    assert header == [
        "kind", "table", "id", "camera_id", "violation_date", "violation_time",
        "violation_image", "acknowledged_by", "acknowledged_at", "temperature", "zone", "tags",
    ]  # fmt: skip
    wanted = [r for r in made if "2025-03-02" <= (r[2] or "") <= "2025-03-04"]
    wanted.append(("fire", hostile, "2025-03-02", "07:00:00.5", 9, True))
    assert [(line["kind"], int(line["id"])) for line in lines] == expected(wanted)
    acks = dict(
        pg.execute(
            "SELECT table_name || '/' || violation_id, acknowledged_at"
            " FROM realtime_acknowledgement"
        ).fetchall()
    )
    by_key = {(r[0], r[1]): r for r in wanted}
    for line in lines:
        kind, pk, day, time, camera, acknowledged = by_key[line["kind"], int(line["id"])]
        assert line["acknowledged_by"] == (
            ("Zoë" if pk == hostile else "anna") if acknowledged else ""
        )
        assert line["table"] == TABLES[kind]
        assert line["camera_id"] == str(camera)
        assert line["violation_date"] == day
        # As the detectors wrote it, fractions of a second included.
        written = time or ""
        assert line["violation_time"] == (written.rstrip("0") if "." in written else written)
        assert line["violation_image"] == f"/media/{kind}-{day}-{time}.jpg"
        ack_at = acks.get(f"{TABLES[kind]}/{pk}")
        assert line["acknowledged_at"] == (timezone.localtime(ack_at).isoformat() if ack_at else "")
        assert datetime.fromisoformat(line["acknowledged_at"] or "2025-01-01T00:00+00:00").tzinfo
        if kind != "fire":
            assert line["temperature"] == line["zone"] == line["tags"] == ""
    hostile_line = next(
        line for line in lines if line["id"] == str(hostile) and line["kind"] == "fire"
    )
    assert hostile_line["zone"] == 'a "quoted", line\nbreak é'
    assert hostile_line["acknowledged_by"] == "Zoë"
    assert hostile_line["temperature"] == ""


def test_the_export_takes_the_history_filters_and_a_token(pg, client, made, token) -> None:
    query = "kind=loto&camera=2&acknowledged=1"
    _, lines = read_csv(
        Client().get(f"/history/export.csv?{query}", headers={"Authorization": f"Bearer {token}"})
    )
    assert [(line["kind"], int(line["id"])) for line in lines] == all_pages(client, query)
    assert Client().get("/history/export.csv").status_code == 302
    body = b"".join(client.get("/history/export.csv?kind=human&bom=0"))
    assert body.startswith(b"kind,table,id,")


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


def test_the_live_tables_chart_counts_the_last_24_hours_per_hour_and_kind(pg, client) -> None:
    now = timezone.now()
    for _ in range(3):
        insert(pg, "ppe", *local(now), camera=7)
    insert(pg, "human", *local(now), camera=2)
    two_hours_ago = now - timedelta(hours=2)
    insert(pg, "loto", *local(two_hours_ago), camera=7)
    insert(pg, "loto", *local(now - timedelta(hours=25)), camera=5)  # outside
    html = client.get("/").content.decode()
    hour = timezone.localtime(now).strftime("%Y-%m-%dT%H")
    assert segments(html, hour) == {"human": 1, "loto": 0, "ppe": 3}
    assert segments(html, timezone.localtime(two_hours_ago).strftime("%Y-%m-%dT%H"))["loto"] == 1
    assert html.count('<g class="trend-bar"') == 24
    assert re.search(r'camera 7</a> \(4\), <a href="/\?camera=2">camera 2</a> \(1\)', html)
    assert "camera 5" not in html
    # The fragment the page re-fetches, filtered as the page is.
    fragment = client.get("/trend/?camera=7").content.decode()
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
    client, made, query, unit, bars
) -> None:
    html = client.get(f"/history/?{query}").content.decode()
    assert f"Violations per {unit}" in html
    assert html.count('<g class="trend-bar"') == bars
    if unit == "day":
        for day in range(1, 6):
            counts = segments(html, f"2025-03-0{day}")
            wanted = [r for r in made if r[2] == f"2025-03-0{day}"]
            assert sum(counts.values()) == len(wanted)
            assert counts["fire"] == len([r for r in wanted if r[0] == "fire"])


def test_a_range_too_long_to_chart_still_lists_its_rows(pg, client) -> None:
    pk = insert(pg, "human", "1990-06-01", "12:00:00")
    html = client.get("/history/?from=1900-01-01").content.decode()
    assert "too long to draw" in html
    assert rows_of(html) == [("human", pk)]
