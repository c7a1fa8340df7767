"""A row that leaves what a stream keeps is removed from it; one that enters is added
(issue 29, item 1), on every route, live and replayed, on a real Daphne with a separate
listen_notify over Redis.

North (cameras 1-3) is alice's, South (4-6) bob's. A detector corrects a violation's
camera from 2 to 5: alice's streams had it and must be told it left, as a DELETE of the
row as they knew it (never South's new values); bob's never had it and get it as an
insert; a superuser's streams keep it, as the UPDATE it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests import browsing
from tests.helpers import Stack, event_number, newest_event, next_frame, sse, websocket
from tests.test_sites_live import insert, sites

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
OP = re.compile(r'data-op="([A-Z]+)"')
ROW = re.compile(r'id="(?:admin-)?violation-ppe-([0-9]+)"')
IMAGE_OF_SOUTH = "/media/now-in-the-south.jpg"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: Any) -> Iterator[Stack]:
    from django.conf import settings

    stack = Stack.start(
        "redis", database_url, settings.TEST_REDIS_URL, tmp_path_factory.mktemp("moves")
    )
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def tokens() -> dict[str, str]:
    from realtime.models import ApiToken

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


async def ws_changes(ws: Any, last: int) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, op, data) of every frame up to the one of event `last`."""
    got: list[tuple[int, str, dict[str, Any]]] = []
    while not got or got[-1][0] != last:
        frame = await next_frame(ws, 15)
        got.append((frame["id"], frame["op"], frame["data"]))
    return got


async def sse_changes(stream: Any, last: int) -> list[tuple[int, str, Any]]:
    """(id, op, data) of each change up to event `last`: JSON, or a rows stream's `<tr>`
    (op from data-op, data the row's id)."""
    got: list[tuple[int, str, Any]] = []
    while not got or got[-1][0] != last:
        event = await stream.next_event(15)
        if event.event != "message" or not event.id:
            continue
        if event.data.startswith("{"):
            change = json.loads(event.data)
            got.append((event_number(event.id), change["op"], change["data"]))
        else:
            op, row = OP.search(event.data), ROW.search(event.data)
            assert op and row, event.data
            got.append((event_number(event.id), op[1], int(row[1])))
    return got


def move(pg: Any, row: int, camera: int) -> int:
    pg.execute(
        "UPDATE violation_ppedetections SET camera_id = %s, violation_image = %s WHERE id = %s",
        [camera, IMAGE_OF_SOUTH if camera >= 4 else "/media/moved.jpg", row],
    )
    return newest_event(pg)


ROUTES = ("/ws/violations/", "/ws/table/", "/events/violations/", "/events/violations/rows/")


async def test_a_row_moved_to_another_site_leaves_one_users_streams_and_enters_the_others(
    stack, pg, tokens
) -> None:
    from tests.test_sites_live import streams_of

    async with (
        streams_of(stack, tokens["alice"]) as alice,
        streams_of(stack, tokens["bob"]) as bob,
        streams_of(stack, tokens["root"]) as root,
    ):
        row = insert(pg, 2, "/media/in-the-north.jpg")
        inserted = newest_event(pg)
        moved = move(pg, row, 5)
        insert(pg, 1, "/media/north-sentinel.jpg")
        north_sentinel = newest_event(pg)
        insert(pg, 4, "/media/south-sentinel.jpg")
        south_sentinel = newest_event(pg)
        insert(pg, 9, "/media/root-sentinel.jpg")
        root_sentinel = newest_event(pg)

        old_row = {
            "id": row,
            "camera_id": 2,
            "violation_image": "/media/in-the-north.jpg",
        }
        for route, stream in zip(ROUTES, alice, strict=True):
            if route.startswith("/ws/"):
                got: list[Any] = await ws_changes(stream, north_sentinel)
            else:
                got = await sse_changes(stream, north_sentinel)
            assert [(i, op) for i, op, _ in got] == [
                (inserted, "INSERT"),
                (moved, "DELETE"),
                (north_sentinel, "INSERT"),
            ], route
            if route == "/events/violations/rows/":
                assert got[1][2] == row
                continue
            left = got[1][2]
            assert {key: left[key] for key in old_row} == old_row, route
            assert IMAGE_OF_SOUTH not in json.dumps(left), "North learns nothing of South's"
        for route, stream in zip(ROUTES, bob, strict=True):
            if route.startswith("/ws/"):
                got = await ws_changes(stream, south_sentinel)
            else:
                got = await sse_changes(stream, south_sentinel)
            assert [(i, op) for i, op, _ in got] == [
                (moved, "INSERT"),
                (south_sentinel, "INSERT"),
            ], route
            if route != "/events/violations/rows/":
                assert (
                    got[0][2]["camera_id"] == 5 and got[0][2]["violation_image"] == IMAGE_OF_SOUTH
                )
        for route, stream in zip(ROUTES, root, strict=True):
            if route.startswith("/ws/"):
                got = await ws_changes(stream, root_sentinel)
            else:
                got = await sse_changes(stream, root_sentinel)
            assert [op for i, op, _ in got if i in (inserted, moved)] == ["INSERT", "UPDATE"], route


async def test_a_replay_tells_a_stream_the_row_left_it(stack, pg, tokens) -> None:
    before = newest_event(pg)
    row = insert(pg, 2, "/media/in-the-north.jpg")
    inserted = newest_event(pg)
    moved = move(pg, row, 5)
    insert(pg, 6, "/media/south-sentinel.jpg")
    south_sentinel = newest_event(pg)
    insert(pg, 3, "/media/north-sentinel.jpg")
    north_sentinel = newest_event(pg)
    expected = {
        "alice": ([(inserted, "INSERT"), (moved, "DELETE"), (north_sentinel, "INSERT")], 2),
        "bob": ([(moved, "INSERT"), (south_sentinel, "INSERT")], 5),
    }
    for user, (changes, camera) in expected.items():
        token = tokens[user]
        last = changes[-1][0]
        for route in ROUTES[:2]:
            url = f"{stack.ws}{route}?token={token}&lastEventId={before}"
            async with websocket(url) as ws:
                got = await ws_changes(ws, last)
            assert [(i, op) for i, op, _ in got] == changes, (user, route)
            assert all(data["camera_id"] == camera for i, _, data in got if i == moved)
        for route in ROUTES[2:]:
            headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(before)}
            async with sse(f"{stack.http}{route}", headers) as stream:
                got = await sse_changes(stream, last)
            assert [(i, op) for i, op, _ in got] == changes, (user, route)


@pytest.mark.parametrize("layout", ["table", "admin"])
async def test_a_page_of_one_camera_loses_the_row_that_moved_to_another(
    stack, pg, tokens, layout
) -> None:
    """Inside one site: ?camera=2 had the row, ?camera=3 gets it, the page of every
    camera keeps it (an UPDATE); live, and replayed."""
    auth = {"Authorization": f"Bearer {tokens['alice']}"}
    rows = f"{stack.http}/events/violations/rows/?layout={layout}"
    before = newest_event(pg)
    async with (
        sse(f"{rows}&camera=2", auth) as camera_2,
        sse(f"{rows}&camera=3", auth) as camera_3,
        sse(rows, auth) as every_camera,
    ):
        row = insert(pg, 2, "/media/at-camera-2.jpg")
        inserted = newest_event(pg)
        moved = move(pg, row, 3)
        insert(pg, 2, "/media/sentinel-2.jpg")
        sentinel_2 = newest_event(pg)
        insert(pg, 3, "/media/sentinel-3.jpg")
        sentinel_3 = newest_event(pg)
        live = {
            "2": await sse_changes(camera_2, sentinel_2),
            "3": await sse_changes(camera_3, sentinel_3),
            "*": await sse_changes(every_camera, sentinel_3),
        }
    expected = {
        "2": [(inserted, "INSERT"), (moved, "DELETE"), (sentinel_2, "INSERT")],
        "3": [(moved, "INSERT"), (sentinel_3, "INSERT")],
        "*": [
            (inserted, "INSERT"),
            (moved, "UPDATE"),
            (sentinel_2, "INSERT"),
            (sentinel_3, "INSERT"),
        ],
    }
    for camera, changes in expected.items():
        assert [(i, op) for i, op, _ in live[camera]] == changes, camera
        query = "" if camera == "*" else f"&camera={camera}"
        headers = {**auth, "Last-Event-ID": str(before)}
        async with sse(f"{rows}{query}", headers) as replayed:
            got = await sse_changes(replayed, changes[-1][0])
        assert [(i, op) for i, op, _ in got] == changes, f"replayed, camera {camera}"
