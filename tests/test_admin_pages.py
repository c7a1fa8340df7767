"""The admin's pages say what they know as the console does: times in 24 hours, and a
count that is the planner's estimate labelled as one (the browser's view of the same:
tests/test_admin_browser.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.helpers import insert_violation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "", "a-long-password-1")
    client = Client()
    client.force_login(user)
    return client


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_admin_writes_times_in_24_hours(pg: Any, admin_client: Client) -> None:
    row_id = insert_violation(pg, "violation_ppedetections")
    pg.execute(
        "UPDATE violation_ppedetections SET violation_date = '2026-12-01',"
        " violation_time = '00:50:12.5' WHERE id = %s",
        [row_id],
    )
    admin_client.post(f"/violations/ppe/{row_id}/acknowledge/")
    pg.execute("UPDATE realtime_acknowledgement SET acknowledged_at = '2026-12-01 13:07:00+00'")
    pg.execute("UPDATE realtime_operator_action SET at = '2026-12-01 00:09:00+00'")
    pages = {
        "/admin/realtime/ppedetection/": ["00:50:12", "Dec. 1, 2026, 13:07"],
        "/admin/realtime/acknowledgement/": ["Dec. 1, 2026, 13:07"],
        "/admin/realtime/operatoraction/": ["Dec. 1, 2026, 00:09"],
    }
    for url, wanted in pages.items():
        page = text_of(admin_client.get(url).content.decode())
        for time in wanted:
            assert time in page, (url, time)
        assert not re.search(r"\b[ap]\.m\.", page), url


def test_an_estimated_count_says_about_and_an_exact_one_does_not(
    pg: Any, admin_client: Client
) -> None:
    pg.execute(
        "INSERT INTO violation_lotodetections (camera_id, violation_date, violation_time,"
        " violation_image) SELECT n % 9, DATE '2026-11-01', TIME '06:00', '/media/l' || n"
        " || '.jpg' FROM generate_series(1, 1234) n"
    )
    pg.execute("ANALYZE violation_lotodetections")
    page = text_of(admin_client.get("/admin/realtime/lotodetection/").content.decode())
    assert "about 1,200 results" in page and "about 1,200 lock-out/tag-out breaches" in page
    assert not re.search(r"\b1,?234 (results|lock-out)", page), "an estimate, never shown exact"
    # A small table is counted: exactly.
    for _ in range(12):
        insert_violation(pg, "violation_humandetections")
    pg.execute("ANALYZE violation_humandetections")
    small = text_of(admin_client.get("/admin/realtime/humandetection/").content.decode())
    assert "12 results" in small and "about" not in small
    # A search counts what it found: exactly.
    found = text_of(admin_client.get("/admin/realtime/lotodetection/?q=l77.jpg").content.decode())
    assert "1 result " in found and "1 lock-out/tag-out breach " in found and "about" not in found
