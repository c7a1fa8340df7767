"""A client that resumes after a late commit gets the violation (issue 22, finding 7).

A detector's transaction takes event id N and stays open a moment; another violation takes
N+1 and commits; a client receives N+1 and goes away (a phone on plant Wi-Fi, a server
restart); N commits; the client resumes from what it holds. It must get N: on both SSE
streams (Last-Event-ID, and ?lastEventId= as the page sends it after making a new
EventSource), both WebSocket routes, through Pushpin, and from the position a page was
drawn at.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from channels.db import database_sync_to_async

from tests.helpers import (
    Stack,
    event_number,
    insert_violation,
    newest_event,
    next_frame,
    prune_log,
    sse,
    websocket,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    from django.conf import settings

    logs = tmp_path_factory.mktemp("late")
    stack = Stack.start("redis", database_url, settings.TEST_REDIS_URL, logs)
    try:
        yield stack
    finally:
        stack.stop()


@asynccontextmanager
async def open_transaction(
    db_url: str, image: str
) -> AsyncIterator[tuple[psycopg.Connection[Any], int]]:
    """A detector's transaction that has written a row (and so taken its event id), not
    yet committed; committed when the caller says so."""
    with psycopg.connect(db_url) as slow:
        row = insert_violation(slow, image=image)
        yield slow, row


def event_id_of(pg: Any, row: int) -> int:
    found = pg.execute(
        "SELECT id FROM realtime_changes(0, (SELECT max(id) FROM realtime_event))"
        " WHERE table_name = 'violation_humandetections' AND (data->>'id')::bigint = %s",
        [row],
    ).fetchone()
    assert found is not None
    return int(found[0])


@pytest.mark.parametrize("route", ["/ws/violations/", "/ws/table/"])
async def test_a_websocket_resume_gets_a_change_that_committed_late(
    stack, pg, db_url, token, route
) -> None:
    url = f"{stack.ws}{route}?token={token}"
    async with open_transaction(db_url, "/media/late-ws.jpg") as (slow, late_row):
        async with websocket(url) as ws:
            early = insert_violation(pg, image="/media/early-ws.jpg")
            frame = await next_frame(ws)
            assert frame["data"]["id"] == early
        slow.commit()
    later = insert_violation(pg, image="/media/after-ws.jpg")
    async with websocket(f"{url}&lastEventId={frame['resume']}") as ws:
        got: dict[int, dict[str, Any]] = {}
        while later not in got:
            resumed = await next_frame(ws, 15)
            got[resumed["data"]["id"]] = resumed
    assert late_row in got, "the violation that committed late is replayed"
    assert got[late_row]["id"] == event_id_of(pg, late_row) < frame["id"]


@pytest.mark.parametrize(
    ("path", "how"),
    [
        ("/events/violations/", "header"),
        ("/events/violations/", "query"),
        ("/events/violations/rows/", "header"),
        ("/events/violations/rows/", "query"),
    ],
)
async def test_an_sse_resume_gets_a_change_that_committed_late(
    stack, pg, db_url, token, path, how, marker
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{stack.http}{path}"
    async with open_transaction(db_url, f"{marker}-late") as (slow, late_row):
        async with sse(url, auth) as events:
            early = insert_violation(pg, image=f"{marker}-early")
            event = await events.next_event(15)
            while event.event != "message":
                event = await events.next_event(15)
            assert f"{early}" in event.data
            last_id = events.last_id
        slow.commit()
    assert last_id is not None and event_number(last_id) > event_id_of(pg, late_row)
    insert_violation(pg, image=f"{marker}-after")
    if how == "header":
        resume = sse(url, {**auth, "Last-Event-ID": last_id})
    else:
        resume = sse(f"{url}?lastEventId={last_id}", auth)
    seen: list[str] = []
    ids: list[str | None] = []
    async with resume as events:
        while not any(f"{marker}-after" in data for data in seen):
            event = await events.next_event(15)
            if event.event == "message":
                seen.append(event.data)
                ids.append(event.id)
    late_event = event_id_of(pg, late_row)
    assert any(f"{marker}-late" in data for data in seen), (
        f"the late violation (event {late_event}) is replayed after {last_id}: {ids}"
    )


async def test_a_page_drawn_before_a_late_commit_streams_it(stack, pg, db_url) -> None:
    """The page's stream starts at the position the page was drawn at: a row that took its
    id before and commits after the page read the tables still reaches it."""
    from tests import browsing

    await database_sync_to_async(browsing.browser_user)("late-reader")
    async with open_transaction(db_url, "/media/late-page.jpg") as (slow, late_row):
        insert_violation(pg, image="/media/on-the-page.jpg")
        async with httpx.AsyncClient(base_url=stack.http) as client:
            await client.get("/accounts/login/")
            await client.post(
                "/accounts/login/",
                data={
                    "username": "late-reader",
                    "password": browsing.PASSWORD,
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                },
            )
            page = (await client.get("/")).text
            assert "on-the-page.jpg" in page and "late-page.jpg" not in page
            start = re.search(r'data-last-event-id="([^"]+)"', page)
            assert start is not None
            slow.commit()
            insert_violation(pg, image="/media/after-the-page.jpg")
            seen: list[str] = []
            async with client.stream(
                "GET", f"/events/violations/rows/?lastEventId={start[1]}"
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    seen.append(line)
                    if "after-the-page.jpg" in line:
                        break
    assert any(f"violation-human-{late_row}" in line for line in seen)


async def test_a_resume_at_the_start_of_an_emptied_log_is_no_reset(
    stack, pg, db_url, token
) -> None:
    """The log was pruned to nothing; a client starts, a change takes the next id and commits
    late, another commits: the ids below the first visible one are not pruned ones."""
    prune_log(pg, newest_event(pg))
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{stack.http}/events/violations/"
    async with sse(url, auth) as events:
        async with open_transaction(db_url, "/media/first-late.jpg") as (slow, _):
            insert_violation(pg, image="/media/first-early.jpg")
            await events.next_change(15)
            last_id = events.last_id
            slow.commit()
    assert last_id is not None
    async with sse(url, {**auth, "Last-Event-ID": last_id}) as events:
        event = await events.next_event(15)
    assert event.event == "message" and "/media/first-late.jpg" in event.data
