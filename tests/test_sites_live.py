"""Who sees what on the streams (#16): two sites, two users, a superuser, on a real Daphne
with a separate listen_notify over Redis, and the real Chromium for the page.

North (cameras 1-3) is alice's, South (4-6) bob's, camera 9 in no site. Each user's
WebSockets, SSE streams and replays carry only their sites' changes, DELETEs and rows too
big for a NOTIFY included; revoking a grant reaches open streams within 10 s.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed

from realtime.access import scopes
from realtime.models import ApiToken
from tests import browsing
from tests.helpers import Stack, event_number, newest_event, next_frame, sse, websocket

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
ROW_ID = re.compile(r'id="violation-ppe-([0-9]+)"')
OP = re.compile(r'data-op="([A-Z]+)"')


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    from django.conf import settings

    logs = tmp_path_factory.mktemp("sites")
    stack = Stack.start("redis", database_url, settings.TEST_REDIS_URL, logs)
    try:
        yield stack
    finally:
        stack.stop()


def sites(*args: str) -> None:
    call_command("sites", *args, stdout=io.StringIO())
    scopes.forget()


@pytest.fixture
def tokens() -> dict[str, str]:
    made = {
        "alice": browsing.browser_user("alice"),
        "bob": browsing.browser_user("bob"),
        "root": browsing.browser_user("root", superuser=True),
    }
    sites("set", "North", "--cameras", "1-3")
    sites("set", "South", "--cameras", "4-6")
    sites("grant", "North", "alice")
    sites("grant", "South", "bob")
    return {name: ApiToken.issue(user) for name, user in made.items()}


def insert(pg: Any, camera: int, image: str) -> int:
    row = pg.execute(
        "INSERT INTO violation_ppedetections (camera_id, violation_date, violation_time,"
        " violation_image) VALUES (%s, CURRENT_DATE, LOCALTIME, %s) RETURNING id",
        [camera, image],
    ).fetchone()
    return int(row[0])


def changes(pg: Any, sentinel_camera: int) -> tuple[dict[str, set[int]], int]:
    """Changes of every site, then a sentinel row of `sentinel_camera`: by then a stream
    has had everything it will get (the bus keeps the order). The event ids each user may
    see, by user, and the sentinel's event id."""
    seen: dict[str, set[int]] = {"north": set(), "south": set(), "nowhere": set()}

    def logged(where: str) -> None:
        seen[where].add(newest_event(pg))

    north = insert(pg, 1, "/media/north.jpg")
    logged("north")
    south = insert(pg, 4, "/media/south.jpg")
    logged("south")
    insert(pg, 9, "/media/nowhere.jpg")
    logged("nowhere")
    insert(pg, 2, "/media/" + "n" * 9000 + ".jpg")  # too big for a NOTIFY
    logged("north")
    insert(pg, 5, "/media/" + "s" * 9000 + ".jpg")
    logged("south")
    pg.execute("UPDATE violation_ppedetections SET violation_image = 'x' WHERE id = %s", [south])
    logged("south")
    pg.execute("DELETE FROM violation_ppedetections WHERE id = %s", [south])
    logged("south")
    pg.execute("DELETE FROM violation_ppedetections WHERE id = %s", [north])
    logged("north")
    insert(pg, sentinel_camera, "/media/sentinel.jpg")
    return seen, newest_event(pg)


async def frames_to(ws: Any, last: int) -> set[int]:
    got: set[int] = set()
    while last not in got:
        got.add((await next_frame(ws, 15))["id"])
    return got


async def events_to(stream: Any, last: int) -> tuple[set[int], list[str]]:
    """The event ids (and, for a rows stream, the ops) up to `last`."""
    got: set[int] = set()
    ops: list[str] = []
    while last not in got:
        event = await stream.next_event(15)
        if event.event in ("message", "acknowledgement") and event.id:
            got.add(event_number(event.id))
            found = OP.search(event.data)
            if found:
                ops.append(found[1])
    return got, ops


@asynccontextmanager
async def streams_of(stack: Stack, token: str) -> AsyncIterator[list[Any]]:
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
        websocket(f"{stack.ws}/ws/table/?token={token}") as table,
        sse(f"{stack.http}/events/violations/", auth) as json_stream,
        sse(f"{stack.http}/events/violations/rows/", auth) as rows,
    ):
        yield [ws, table, json_stream, rows]


async def test_each_users_streams_carry_only_their_sites_changes(stack, pg, tokens) -> None:
    async with (
        streams_of(stack, tokens["alice"]) as alice,
        streams_of(stack, tokens["bob"]) as bob,
        streams_of(stack, tokens["root"]) as root,
    ):
        seen, sentinel_north = changes(pg, 3)
        north = seen["north"] | {sentinel_north}
        for ws in alice[:2]:
            assert await frames_to(ws, sentinel_north) == north
        got, _ = await events_to(alice[2], sentinel_north)
        assert got == north
        got, ops = await events_to(alice[3], sentinel_north)
        assert got == north and ops == ["INSERT", "INSERT", "DELETE", "INSERT"]

        insert(pg, 6, "/media/sentinel-south.jpg")
        sentinel_south = newest_event(pg)
        south = seen["south"] | {sentinel_south}
        for ws in bob[:2]:
            assert await frames_to(ws, sentinel_south) == south
        got, ops = await events_to(bob[3], sentinel_south)
        assert got == south and ops == ["INSERT", "INSERT", "UPDATE", "DELETE", "INSERT"]

        everything = seen["north"] | seen["south"] | seen["nowhere"]
        everything |= {sentinel_north, sentinel_south}
        assert await frames_to(root[0], sentinel_south) == everything
        got, _ = await events_to(root[3], sentinel_south)
        assert got == everything


async def test_a_replay_carries_only_their_sites_changes(stack, pg, tokens) -> None:
    before = newest_event(pg)
    seen, sentinel = changes(pg, 3)
    north = seen["north"] | {sentinel}
    token = tokens["alice"]
    async with websocket(f"{stack.ws}/ws/violations/?token={token}&lastEventId={before}") as ws:
        assert await frames_to(ws, sentinel) == north
    for path in ("/events/violations/", "/events/violations/rows/"):
        headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(before)}
        async with sse(f"{stack.http}{path}", headers) as stream:
            got, _ = await events_to(stream, sentinel)
            assert got == north, path


async def test_a_stream_cannot_be_asked_for_another_scope(stack, pg, tokens) -> None:
    """The stream is named after the user's scope by the server; a resume point naming
    another scope's stream resumes the user's own."""
    before = newest_event(pg)
    seen, sentinel = changes(pg, 3)
    headers = {
        "Authorization": f"Bearer {tokens['alice']}",
        "Last-Event-ID": f"violations~1-9:{before}",
    }
    async with sse(f"{stack.http}/events/violations/", headers) as stream:
        got, _ = await events_to(stream, sentinel)
        assert got == seen["north"] | {sentinel}


async def test_revoking_a_grant_reaches_open_streams_without_losing_the_rest(
    stack, pg, tokens
) -> None:
    await database_sync_to_async(sites)("grant", "South", "alice")  # alice: North and South
    token = tokens["alice"]
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
        sse(f"{stack.http}/events/violations/", auth) as stream,
    ):
        await asyncio.sleep(0.5)
        insert(pg, 4, "/media/south-before.jpg")
        south_before = newest_event(pg)
        assert (await next_frame(ws))["id"] == south_before
        assert (await stream.next_change())["id"] == south_before
        await database_sync_to_async(sites)("revoke", "South", "alice")
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await next_frame(ws, 12)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
        with pytest.raises(EOFError):
            while True:
                await stream.next_event(12)
        assert asyncio.get_running_loop().time() - started < 10.5
        last = stream.last_id
        assert last is not None
    # Meanwhile: one of each site's. Resumed: North's (still hers), not South's.
    insert(pg, 5, "/media/south-after.jpg")
    south_after = newest_event(pg)
    insert(pg, 2, "/media/north-after.jpg")
    north_after = newest_event(pg)
    async with websocket(
        f"{stack.ws}/ws/violations/?token={token}&lastEventId={south_before}"
    ) as ws:
        assert await frames_to(ws, north_after) == {north_after}
    async with sse(f"{stack.http}/events/violations/", {**auth, "Last-Event-ID": last}) as again:
        got, _ = await events_to(again, north_after)
        assert got == {north_after} and south_after not in got


async def test_a_shelf_tells_a_users_row_stream_and_not_their_json_stream(
    stack, pg, tokens
) -> None:
    """The `shelves` event is for the live table's rows stream; a program's JSON stream
    carries changes only, whatever the user's scope."""
    import httpx

    from realtime.streams.sse_fanout import SHELVES_EVENT

    auth = {"Authorization": f"Bearer {tokens['alice']}"}
    async with (
        sse(f"{stack.http}/events/violations/", auth) as json_stream,
        sse(f"{stack.http}/events/violations/rows/", auth) as rows,
    ):
        async with httpx.AsyncClient(base_url=stack.http) as alice:
            await alice.get("/accounts/login/")
            await alice.post(
                "/accounts/login/",
                data={
                    "username": "alice",
                    "password": browsing.PASSWORD,
                    "csrfmiddlewaretoken": alice.cookies["csrftoken"],
                },
            )
            shelved = await alice.post(
                "/shelves/",
                data={"camera": "2", "minutes": "15"},
                headers={"X-CSRFToken": alice.cookies["csrftoken"]},
            )
            assert shelved.status_code == 200
        assert (await rows.next_event(5)).event == SHELVES_EVENT.split(b"\n")[0][7:].decode()
        insert(pg, 1, "/media/after-the-shelf.jpg")
        after = newest_event(pg)
        event = await json_stream.next_event(5)
        assert event.event == "message" and event.id and event.id.startswith("violations~1-3:")
        assert event_number(event.id) == after


def test_the_live_table_shows_a_user_their_sites_rows_only(stack, page, pg, tokens) -> None:
    before = insert(pg, 4, "/media/south-old.jpg")
    mine = insert(pg, 1, "/media/north-old.jpg")
    browsing.log_in(page, stack.http, "/", "alice", browsing.PASSWORD)
    browsing.expect_live(page)
    expect(page.locator(f"#violation-ppe-{mine}")).to_be_visible()
    expect(page.locator(f"#violation-ppe-{before}")).to_have_count(0)
    south = insert(pg, 5, "/media/south-live.jpg")
    north = insert(pg, 2, "/media/north-live.jpg")
    expect(page.locator(f"#violation-ppe-{north}")).to_be_visible(timeout=5_000)
    expect(page.locator(f"#violation-ppe-{south}")).to_have_count(0)
    expect(page.locator('.count[data-kind="ppe"]')).to_have_text("2")
    page.reload()
    expect(page.locator("#violation-rows tr.violation")).to_have_count(2)
    assert ROW_ID.findall(page.content()) == [str(north), str(mine)]
    # Load older, the image and acknowledging, from her browser's session, on Daphne.
    assert ROW_ID.findall(page.request.get(f"{stack.http}/rows/").text()) == [str(north), str(mine)]
    for kind_path in (f"/violations/ppe/{south}/image/", f"/violations/ppe/{south}/"):
        assert page.request.get(f"{stack.http}{kind_path}").status == 404, kind_path
    assert page.request.get(f"{stack.http}/violations/ppe/{north}/").status == 200
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    refused = page.request.post(
        f"{stack.http}/violations/ppe/{south}/acknowledge/", headers={"X-CSRFToken": csrf}
    )
    assert refused.status == 404
    done = page.request.post(
        f"{stack.http}/violations/ppe/{north}/acknowledge/", headers={"X-CSRFToken": csrf}
    )
    assert done.status == 200 and "Acknowledged by alice" in done.text()
    acknowledged = pg.execute("SELECT violation_id FROM realtime_acknowledgement").fetchall()
    assert acknowledged == [(north,)]
