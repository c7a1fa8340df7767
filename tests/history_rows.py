"""What the history's tests share: an adopted kind with columns of its own, rows of four
kinds written as detectors write them, and reading the history's pages."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from realtime.models import ViolationKind
from realtime.violations import kinds

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
def fire_kind(pg: Any) -> Iterator[str]:
    pg.execute(FIRE)
    ViolationKind.objects.create(
        slug="fire", label="Fire", schema_name="public", table_name=TABLES["fire"], position=40
    )
    kinds.forget()
    yield "fire"
    pg.execute("DROP TABLE IF EXISTS violation_firedetections")


@pytest.fixture
def historian() -> Client:
    """A logged-in client of the history's pages."""
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
def made_rows(pg: Any, fire_kind: str) -> list[Made]:
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
