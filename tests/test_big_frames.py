"""A change too big for a WebSocket frame (#22, finding 3): a row with a 1.1 MB
`violation_image`, on a real Daphne with a separate listen_notify over Redis.

Daphne (autobahn) refuses an outgoing WebSocket message over 1 MiB and keeps the
connection open: such a change was silently skipped live, and stalled a client resuming
from before it. Every route now carries it in the documented reduced form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests import browsing
from tests.helpers import (
    Stack,
    event_number,
    insert_violation,
    newest_event,
    next_frame,
    sse,
    websocket,
)
from tests.test_metrics import sample

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BIG_IMAGE = "/media/" + "b" * 1_100_000 + ".jpg"
ROUTES = ("/ws/violations/", "/ws/table/")


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    from django.conf import settings

    logs = tmp_path_factory.mktemp("big-frames")
    multiproc = logs / "prometheus"  # the listener's counters, summed by Daphne's /metrics
    multiproc.mkdir()
    stack = Stack.start(
        "redis",
        database_url,
        settings.TEST_REDIS_URL,
        logs,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    try:
        yield stack
    finally:
        stack.stop()


def assert_reduced(frame: dict[str, Any], event_id: int, row_id: int) -> None:
    """The documented reduced form of the big row's INSERT."""
    assert (frame["id"], frame["table"], frame["op"]) == (
        event_id,
        "violation_humandetections",
        "INSERT",
    )
    assert frame["truncated"] is True
    assert frame["omitted"] == ["violation_image"]
    assert frame["data"]["id"] == row_id
    assert {"id", "camera_id", "violation_date", "violation_time"} == set(frame["data"])
    assert frame["links"] == {"page": f"/violations/human/{row_id}/"}


def assert_reduced_row(html: str, row_id: int) -> None:
    """The big row's `<tr>` on the rows stream: drawn, new, its image cell a link to the
    violation's page instead of the image."""
    assert f'id="violation-human-{row_id}"' in html
    assert 'data-op="INSERT"' in html and "is-new" in html
    omitted = f'<td class="field-image"><a class="image-omitted" href="/violations/human/{row_id}/"'
    assert omitted in html
    assert "bbbbbbbbbb" not in html


async def reduced_frames(stack: Stack, token: str) -> float:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{stack.http}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    count = sample(
        response.text, "realtime_frames_reduced_total", table="violation_humandetections"
    )
    return count or 0.0


@asynccontextmanager
async def every_route(stack: Stack, token: str, **headers: str) -> AsyncIterator[list[Any]]:
    """Both WebSocket routes, the JSON stream and the rows stream, resuming after
    `lastEventId` when given."""
    last = headers.get("lastEventId")
    query = f"&lastEventId={last}" if last else ""
    sse_headers = {"Authorization": f"Bearer {token}"}
    if last:
        sse_headers["Last-Event-ID"] = last
    async with (
        websocket(f"{stack.ws}{ROUTES[0]}?token={token}{query}", max_size=None) as ws,
        websocket(f"{stack.ws}{ROUTES[1]}?token={token}{query}", max_size=None) as table,
        sse(f"{stack.http}/events/violations/", sse_headers) as json_stream,
        sse(f"{stack.http}/events/violations/rows/", sse_headers) as rows,
    ):
        yield [ws, table, json_stream, rows]


async def next_row(rows: Any) -> tuple[int, str]:
    """The next `<tr>` on a rows stream: (event id, html)."""
    while True:
        event = await rows.next_event(10)
        if event.event == "message":
            return event_number(event.id), event.data


async def test_a_change_too_big_for_a_frame_reaches_every_live_stream_reduced(
    stack, pg, token
) -> None:
    counted_before = await reduced_frames(stack, token)
    async with every_route(stack, token) as (ws, table, json_stream, rows):
        big = insert_violation(pg, image=BIG_IMAGE)
        big_event = newest_event(pg)
        small = insert_violation(pg, image="/media/after-the-big-one.jpg")
        small_event = newest_event(pg)
        frames = []
        for socket in (ws, table):
            frame = await next_frame(socket)
            assert_reduced(frame, big_event, big)
            frames.append(frame)
            assert (await next_frame(socket))["data"]["id"] == small
        assert frames[0] == frames[1]
        # The JSON stream carries the same text as the sockets.
        assert await json_stream.next_change() == frames[0]
        assert (await json_stream.next_change())["id"] == small_event
        event_id, html = await next_row(rows)
        assert event_id == big_event
        assert_reduced_row(html, big)
        assert (await next_row(rows))[0] == small_event
    assert await reduced_frames(stack, token) > counted_before
    assert "PayloadExceeded" not in stack.server.log()


async def test_a_client_resuming_from_before_a_big_change_gets_it_and_what_follows(
    stack, pg, token
) -> None:
    start = newest_event(pg)
    big = insert_violation(pg, image=BIG_IMAGE)
    big_event = newest_event(pg)
    after = [insert_violation(pg, image=f"/media/after-{n}.jpg") for n in range(2)]
    async with every_route(stack, token, lastEventId=str(start)) as (ws, table, json_stream, rows):
        for socket in (ws, table):
            assert_reduced(await next_frame(socket), big_event, big)
            assert [(await next_frame(socket))["data"]["id"] for _ in after] == after
        replayed = await json_stream.next_change()
        assert_reduced(replayed, big_event, big)
        assert [(await json_stream.next_change())["data"]["id"] for _ in after] == after
        event_id, html = await next_row(rows)
        assert event_id == big_event
        assert_reduced_row(html, big)
        rows_after = [await next_row(rows) for _ in after]
        assert [re.findall(r'id="violation-human-([0-9]+)"', h)[0] for _, h in rows_after] == [
            str(row) for row in after
        ]
    assert "PayloadExceeded" not in stack.server.log()


def test_the_live_table_draws_a_big_row_and_sounds(stack, page, pg) -> None:
    """The reduced form still draws the row, counted and sounding; its image cell says the
    row was too long to show live."""
    browsing.browser_user("operator", superuser=True)
    browsing.log_in(page, stack.http, "/", "operator", browsing.PASSWORD)
    browsing.expect_live(page)
    page.click("#sound-toggle")  # the user gesture browsers require
    expect(page.locator("#sound-toggle")).to_have_text("Mute sound")
    page.wait_for_timeout(2_100)  # past the enable click's own burst window
    page.evaluate("window.__plays = 0")
    big = insert_violation(pg, camera_id=17, image=BIG_IMAGE)
    row = page.locator(f"#violation-human-{big}")
    expect(row).to_be_visible(timeout=5_000)
    expect(row.locator(".field-camera")).to_have_text("17")
    expect(row.locator(".field-image")).to_have_text("Too long to show live")
    expect(page.locator('.count[data-kind="human"]')).to_have_text("1")
    page.wait_for_function("window.__plays === 1")
