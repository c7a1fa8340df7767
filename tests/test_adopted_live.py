"""The product on a database the detectors made: old rows, live rows, acknowledgements, kinds.

One database per module, built by tests/fixtures/detectors_schema.sql (the DBA's tables with
rows, extra columns and the tutorial's trigger), migrated by the real `manage.py migrate`,
served by a real Daphne; the pages in Debian's Chromium.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.sync.client import ClientConnection, connect

from tests import browsing
from tests.browsing import SCREENSHOTS, expect_live
from tests.helpers import Stack, manage, scratch_database

pytestmark = [pytest.mark.e2e]

SCHEMA = (Path(__file__).resolve().parent / "fixtures" / "detectors_schema.sql").read_text()
PASSWORD = "a-long-password-1"
KIND_ORDER = {
    "violation_humandetections": "human",
    "violation_lotodetections": "loto",
    "violation_ppedetections": "ppe",
}


@dataclass
class Adopted:
    url: str
    stack: Stack
    token: str

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return [tuple(row) for row in cur.fetchall()] if cur.description else []

    def get(self, path: str) -> httpx.Response:
        return httpx.get(
            self.stack.http + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )


@pytest.fixture(scope="module")
def adopted(db_url: str, tmp_path_factory: Any) -> Iterator[Adopted]:
    with scratch_database(db_url, f"adopted_{uuid.uuid4().hex[:8]}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        manage(url, "migrate", "--noinput")
        manage(
            url,
            "createsuperuser",
            "--noinput",
            DJANGO_SUPERUSER_USERNAME="operator",
            DJANGO_SUPERUSER_EMAIL="operator@example.com",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )
        token = manage(url, "issue_token", "operator").strip().splitlines()[-1]
        stack = Stack.start("memory", url, None, tmp_path_factory.mktemp("adopted"))
        try:
            yield Adopted(url, stack, token)
        finally:
            stack.stop()


def newest(adopted: Adopted, n: int, where: str = "true") -> list[str]:
    """The images of the newest rows across the three tables, as the page should order them."""
    union = " UNION ALL ".join(
        f"SELECT '{kind}' AS kind, id, violation_date AS d, violation_time AS t,"
        f" violation_image::text AS image FROM {table} WHERE {where}"
        for table, kind in KIND_ORDER.items()
    )
    rows = adopted.sql(
        f"SELECT image FROM ({union}) u ORDER BY coalesce(d, '-infinity'::date) DESC,"
        f" coalesce(t, '00:00'::time) DESC, kind COLLATE \"C\" DESC, id DESC LIMIT {n}"
    )
    return [row[0] for row in rows]


def images_on(html: str) -> list[str]:
    return re.findall(r'<a class="image-path" href="[^"]*"[^>]*><bdi>([^<]*)</bdi></a>', html)


def test_the_old_rows_are_on_the_dashboard(adopted) -> None:
    page = adopted.get("/")
    assert page.status_code == 200
    assert images_on(page.text) == newest(adopted, 50)
    ppe = adopted.get("/?kind=ppe").text
    [(time_text,)] = adopted.sql(
        "SELECT violation_time::text FROM violation_ppedetections ORDER BY violation_date DESC,"
        " violation_time DESC, id DESC LIMIT 1"
    )
    assert "." in time_text, "the detectors wrote fractions of a second"
    # To the second, then the row's age (drawn by the page's script).
    shown = f'<td class="field-time nowrap">{time_text[:8]} <span class="age"></span></td>'
    assert shown in ppe, "shown to the second"
    # One line per violation: the detectors' extra columns are in its detail.
    [(human_id,)] = adopted.sql(
        "SELECT id FROM violation_humandetections ORDER BY violation_date DESC,"
        " violation_time DESC, id DESC LIMIT 1"
    )
    detail = adopted.get(f"/violations/human/{human_id}/").text
    assert re.search(
        r'<th scope="row">confidence</th><td class="detail-confidence">[0-9.]+<', detail
    )
    assert re.search(r'<th scope="row">zone</th><td class="detail-zone">zone-[0-9]<', detail)


def test_load_older_pages_through_the_adopted_tables(adopted) -> None:
    seen: list[str] = []
    html = adopted.get("/").text
    for _ in range(4):
        seen += images_on(html)
        cursor = re.search(r'hx-get="/rows/\?before=([^"]+)"', html)
        assert cursor is not None
        html = adopted.get("/rows/?before=" + cursor.group(1).replace("&amp;", "&")).text
    assert seen == newest(adopted, 200)


def sse_events(url: str, headers: dict[str, str], into: queue.Queue[tuple[str, str]]) -> None:
    """An EventSource in a thread: (event, data) of each event into the queue, until the
    server goes (at the end of the module)."""
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)) as r:
            event, data = "message", list[str]()
            for line in r.iter_lines():
                if line == "":
                    if data:
                        into.put((event, "\n".join(data)))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
    except httpx.HTTPError:
        return


def open_sse(adopted: Adopted, path: str) -> queue.Queue[tuple[str, str]]:
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    threading.Thread(
        target=sse_events,
        args=(adopted.stack.http + path, {"Authorization": f"Bearer {adopted.token}"}, events),
        daemon=True,
    ).start()
    assert events.get(timeout=10)[0] == "stream-open"
    return events


def next_of(events: queue.Queue[tuple[str, str]], kind: str, timeout: float = 10) -> str:
    while True:
        event, data = events.get(timeout=timeout)
        if event == kind:
            return data


def websocket(adopted: Adopted) -> ClientConnection:
    return connect(f"{adopted.stack.ws}/ws/violations/?token={adopted.token}", open_timeout=10)


def insert_human(adopted: Adopted, image: str, confidence: float = 0.93) -> int:
    # As the tutorial's detector writes: the columns it knows, the table's defaults for the rest.
    [(row_id,)] = adopted.sql(
        "INSERT INTO violation_humandetections (camera_id, violation_image, confidence)"
        " VALUES (4, %s, %s) RETURNING id",
        [image, confidence],
    )
    return int(row_id)


def test_a_new_row_arrives_on_every_stream(adopted) -> None:
    changes = open_sse(adopted, "/events/violations/")
    fragments = open_sse(adopted, "/events/violations/rows/?kind=human")
    with websocket(adopted) as ws:
        row_id = insert_human(adopted, "/media/new-on-every-stream.jpg")
        frame = json.loads(ws.recv(timeout=10))
        # Once, though the tutorial's own trigger fires on the same INSERT.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)
    assert frame["op"] == "INSERT" and frame["data"]["id"] == row_id
    assert frame["data"]["confidence"] == 0.93 and frame["data"]["zone"] == "A"
    change = json.loads(next_of(changes, "message"))
    assert change == frame
    html = next_of(fragments, "message")
    # One line per violation: the extra columns are in the JSON and the detail, not the row.
    assert f'id="violation-human-{row_id}"' in html and "confidence" not in html


def log_in(page: Page, adopted: Adopted, path: str) -> None:
    browsing.log_in(page, adopted.stack.http, path, "operator", PASSWORD)


def test_an_acknowledgement_reaches_the_table_and_the_admin_but_not_the_websocket(
    adopted, browser: Browser
) -> None:
    row_id = insert_human(adopted, "/media/to-acknowledge.jpg")
    [(before,)] = adopted.sql(
        "SELECT row_to_json(t)::text FROM violation_humandetections t WHERE id = %s", [row_id]
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    table, changelist = context.new_page(), context.new_page()
    changes = open_sse(adopted, "/events/violations/")
    try:
        log_in(table, adopted, "/")
        changelist.goto(adopted.stack.http + "/admin/realtime/humandetection/")
        for screen in (table, changelist):
            expect_live(screen)
        admin_row = changelist.locator(f'#result_list tr:has([data-violation="human-{row_id}"])')
        expect(admin_row.locator(".field-acknowledged_by")).to_have_text("-")
        with websocket(adopted) as ws:
            table.click(f"#violation-human-{row_id} .ack-button")
            expect(table.locator(f"#violation-human-{row_id}")).to_contain_text(
                "Acknowledged by operator"
            )
            # The admin drew this row itself; the stream re-draws it in place.
            expect(admin_row.locator(".field-acknowledged_by")).to_have_text(
                "operator", timeout=5_000
            )
            expect(admin_row.locator(".field-other_columns")).to_contain_text("confidence: 0.93")
            acknowledgement = json.loads(next_of(changes, "acknowledgement"))
            assert acknowledgement["row_id"] == row_id
            assert acknowledgement["acknowledged_by"] == "operator"
            # Not a change of the row: the documented client would ping for it.
            with pytest.raises(TimeoutError):
                ws.recv(timeout=1.5)
            later = insert_human(adopted, "/media/after-the-acknowledgement.jpg")
            frame = json.loads(ws.recv(timeout=10))
            assert (frame["op"], frame["data"]["id"]) == ("INSERT", later)
        assert json.loads(next_of(changes, "message"))["data"]["id"] == later
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        changelist.screenshot(path=SCREENSHOTS / "adopted-admin-acknowledged.png")
        # The row's own page in the admin: every column the detectors wrote, read-only.
        changelist.goto(f"{adopted.stack.http}/admin/realtime/humandetection/{row_id}/change/")
        columns = changelist.locator(".field-all_columns table")
        expect(columns.locator("tr", has_text="confidence")).to_contain_text("0.93")
        expect(columns.locator("tr", has_text="zone")).to_contain_text("A")
        expect(changelist.locator(".field-acknowledged_by")).to_contain_text("operator")
        expect(changelist.locator("input[type=submit]")).to_have_count(0)
    finally:
        context.close()
    [(after,)] = adopted.sql(
        "SELECT row_to_json(t)::text FROM violation_humandetections t WHERE id = %s", [row_id]
    )
    assert after == before, "the detectors' row is not touched"
    assert adopted.sql(
        "SELECT acknowledged_by FROM realtime_acknowledgement"
        " WHERE table_name = 'violation_humandetections' AND violation_id = %s",
        [row_id],
    ) == [("operator",)]


FIRE_TABLE = """
CREATE TABLE violation_firedetections (
    id serial PRIMARY KEY,
    camera_id integer,
    violation_date date DEFAULT CURRENT_DATE,
    violation_time time DEFAULT LOCALTIME,
    violation_image varchar(255),
    temperature real
)
"""


def test_add_kind_makes_a_fourth_table_live_with_its_label_and_filter(adopted, page) -> None:
    adopted.sql(FIRE_TABLE)
    out = manage(
        adopted.url,
        "add_kind",
        "fire",
        "violation_firedetections",
        "--label",
        "Fire",
        "--colour",
        "#d9480f",
    )
    assert "Kind fire shows" in out
    log_in(page, adopted, "/?kind=fire")
    expect_live(page)
    adopted.sql(
        "INSERT INTO violation_firedetections (camera_id, violation_image, temperature)"
        " VALUES (9, '/media/fire-1.jpg', 412.5)"
    )
    insert_human(adopted, "/media/not-fire.jpg")
    first = page.locator("#violation-rows tr.violation").first
    expect(first).to_contain_text("/media/fire-1.jpg", timeout=5_000)
    expect(first.locator(".kind-badge")).to_have_text("Fire")
    first.locator("td.field-camera").click()
    expect(page.locator("#violation-dialog .detail-temperature")).to_have_text("412.5")
    page.locator("#violation-dialog").get_by_role("button", name="Close").click()
    expect(page.locator('.count[data-kind="fire"]')).to_have_text("1")
    expect(page.locator("#violation-rows")).not_to_contain_text("/media/not-fire.jpg")
    expect(page.locator("#filter-kind option[value=fire]")).to_have_text("Fire")
    colour = page.evaluate(
        "getComputedStyle(document.querySelector('#violation-rows .kind-badge')).backgroundColor"
    )
    assert colour == "rgb(217, 72, 15)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "added-kind.png")

    manage(adopted.url, "add_kind", "--remove", "fire")
    assert (
        adopted.sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'violation_firedetections'::regclass"
        )
        == []
    )
    expect(page.locator("#filter-kind option[value=fire]")).to_have_count(1)  # until reloaded
    deadline_status = None
    for _ in range(40):
        deadline_status = adopted.get("/?kind=fire").status_code
        if deadline_status == 400:
            break
        page.wait_for_timeout(250)
    assert deadline_status == 400, "the kind is gone within seconds"
