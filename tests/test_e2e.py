"""End to end: Daphne (and listen_notify) as subprocesses, rows INSERTed with plain SQL.

Both modes run the same code: "memory" is one Daphne with the listener inside and the
in-memory channel layer; "redis" is Daphne plus a separate listen_notify over channels-redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

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


@pytest.fixture(scope="module", params=["memory", "redis"])
def stack(request, database_url: str, tmp_path_factory) -> Iterator[Stack]:
    from django.conf import settings

    mode = request.param
    redis_url = settings.TEST_REDIS_URL if mode == "redis" else None
    stack = Stack.start(mode, database_url, redis_url, tmp_path_factory.mktemp(f"e2e-{mode}"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_insert_update_delete_reach_websocket_and_sse(stack, pg, token, auth, marker) -> None:
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
        sse(f"{stack.http}/events/violations/", auth) as events,
    ):
        row_id = insert_violation(pg, "violation_ppedetections", camera_id=7, image=marker)
        frame = await next_frame(ws)
        assert frame["table"] == "violation_ppedetections"
        assert frame["op"] == "INSERT"
        assert frame["data"]["id"] == row_id
        assert frame["data"]["camera_id"] == 7
        assert frame["data"]["violation_image"] == marker
        assert set(frame) == {"id", "table", "op", "data", "resume"}
        # Where to resume from after it (realtime.pipeline.positions): the SSE event's id, too.
        assert event_number(frame["resume"]) == frame["id"]
        assert await events.next_change() == frame
        assert events.last_id == f"violations:{frame['resume']}"

        pg.execute("UPDATE violation_ppedetections SET camera_id = 8 WHERE id = %s", [row_id])
        pg.execute("DELETE FROM violation_ppedetections WHERE id = %s", [row_id])
        update, delete = await next_frame(ws), await next_frame(ws)
        assert (update["op"], update["data"]["camera_id"]) == ("UPDATE", 8)
        assert (delete["op"], delete["data"]["id"]) == ("DELETE", row_id)
        assert [await events.next_change(), await events.next_change()] == [update, delete]


async def test_legacy_table_url_and_a_20_kb_row(stack, pg, token) -> None:
    image = "/media/" + "w" * 20_000
    async with websocket(f"{stack.ws}/ws/table/?token={token}") as ws:
        insert_violation(pg, image=image)
        frame = await next_frame(ws)
    assert frame["data"]["violation_image"] == image


@pytest.mark.slow
async def test_connections_idle_for_longer_than_10_s_still_receive(stack, pg, token, auth) -> None:
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
        sse(f"{stack.http}/events/violations/", auth) as events,
    ):
        await asyncio.sleep(11)
        insert_violation(pg, image="/media/after-idle.jpg")
        assert (await next_frame(ws))["data"]["violation_image"] == "/media/after-idle.jpg"
        assert (await events.next_change())["data"]["violation_image"] == "/media/after-idle.jpg"
    # Quiet connections must not break anything on the way (redis-py's 5 s socket timeout).
    for process in [stack.server, *stack.running_listeners()]:
        assert "lost" not in process.log(), process.log()


@pytest.mark.parametrize("how", ["header", "query"])
async def test_sse_resume_replays_exactly_what_was_missed(stack, pg, auth, how) -> None:
    url = f"{stack.http}/events/violations/"
    async with sse(url, auth) as events:
        insert_violation(pg, image="/media/seen.jpg")
        seen = await events.next_change()
        last_id = events.last_id
    missed = [insert_violation(pg, image=f"/media/missed-{n}.jpg") for n in range(3)]
    if how == "header":
        resume = sse(url, {**auth, "Last-Event-ID": str(last_id)})
    else:
        resume = sse(f"{url}?lastEventId={last_id}", auth)
    async with resume as events:
        replayed = [await events.next_change()]
        while replayed[-1]["data"]["id"] != missed[-1]:
            replayed.append(await events.next_change())
        insert_violation(pg, image="/media/live.jpg")
        live = await events.next_change()
    # Every change above the resume point, in order; before them, at most changes of the
    # last moments at or below it (its horizon, realtime.pipeline.positions), which a client drops
    # by id (promise 2).
    after = [c for c in replayed if c["id"] > seen["id"]]
    assert [c["data"]["id"] for c in after] == missed
    assert replayed[-len(after) :] == after
    assert live["data"]["violation_image"] == "/media/live.jpg"


redis_only = pytest.mark.parametrize("stack", ["redis"], indirect=True)


@redis_only
async def test_listener_restarted_while_rows_are_inserted_loses_nothing(stack, pg, token) -> None:
    images = [f"/media/restart-{n}.jpg" for n in range(60)]

    def insert_slowly() -> None:
        import time

        for image in images:
            insert_violation(pg, image=image)
            time.sleep(0.02)

    async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
        inserting = asyncio.create_task(asyncio.to_thread(insert_slowly))
        await asyncio.sleep(0.3)
        [old] = stack.running_listeners()
        assert old.stop(signal.SIGTERM) == 0, "listen_notify exits cleanly on SIGTERM"
        assert "listen_notify stopped" in old.log()
        stack.start_listener().wait_for_log("listener active")
        await inserting
        got: set[str] = set()
        while not set(images) <= got:
            # Frames of earlier rows may come again after a restart (at-least-once).
            got.add((await next_frame(ws, timeout=15))["data"]["violation_image"])


@redis_only
async def test_killed_listener_hands_over_to_a_standby(stack, pg, token) -> None:
    [active] = stack.running_listeners()
    standby = stack.start_listener()
    standby.wait_for_log("listener standby")
    async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
        active.kill()  # SIGKILL: no goodbye, PostgreSQL releases its lock
        images = {f"/media/handover-{n}.jpg" for n in range(5)}
        for image in sorted(images):
            insert_violation(pg, image=image)
        standby.wait_for_log("listener active", timeout=5)
        got: set[str] = set()
        while not images <= got:
            got.add((await next_frame(ws, timeout=10))["data"]["violation_image"])


@redis_only
async def test_unreadable_notify_is_skipped_and_the_listener_goes_on(stack, pg, token) -> None:
    [listener] = stack.running_listeners()
    async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
        pg.execute("NOTIFY realtime_changed_v1, 'this is not JSON'")
        row_id = insert_violation(pg, image="/media/after-junk.jpg")
        assert (await next_frame(ws))["data"]["id"] == row_id
    # Counted and told at most once a minute (anyone may NOTIFY): once in this process.
    assert "skipped notifications the event log does not back" in listener.log()
    assert stack.running_listeners() == [listener]


async def test_rows_stream_sends_filtered_row_fragments_and_resumes(stack, pg, auth) -> None:
    url = f"{stack.http}/events/violations/rows/?kind=loto"
    async with sse(url, auth) as rows:
        insert_violation(pg, "violation_humandetections", image="/media/not-loto.jpg")
        loto_id = insert_violation(pg, "violation_lotodetections", image="/media/<loto>.jpg")
        event = await rows.next_event()
        while event.event != "message":
            event = await rows.next_event()
        resume_from = rows.last_id
    assert "\n" not in event.data, "one data: line"
    assert event.data.startswith(f'<tr id="violation-loto-{loto_id}"')
    assert "/media/&lt;loto&gt;.jpg" in event.data
    assert resume_from is not None and resume_from.startswith("table/loto/")

    missed = insert_violation(pg, "violation_lotodetections", image="/media/missed-loto.jpg")
    async with sse(url, {**auth, "Last-Event-ID": resume_from}) as rows:
        event = await rows.next_event()
        while f'<tr id="violation-loto-{missed}"' not in event.data:
            # At most changes at or below the resume point come first (its horizon).
            assert event.event != "message" or event_number(event.id or "") <= event_number(
                resume_from
            )
            event = await rows.next_event()


async def test_resume_from_a_pruned_event_gets_a_stream_reset(stack, pg, auth) -> None:
    def event_of(row_id: int) -> int:
        return int(
            pg.execute(
                "SELECT id FROM realtime_event WHERE table_name = 'violation_humandetections'"
                " AND (data->>'id')::bigint = %s",
                [row_id],
            ).fetchone()[0]
        )

    seen = event_of(insert_violation(pg, image="/media/seen-before-pruning.jpg"))
    missed = event_of(insert_violation(pg, image="/media/pruned-before-resume.jpg"))
    insert_violation(pg, image="/media/kept.jpg")
    prune_log(pg, missed)
    url = f"{stack.http}/events/violations/"
    async with sse(url, {**auth, "Last-Event-ID": str(seen)}) as events:
        event = await events.next_event()
    assert event.event == "stream-reset"


async def test_open_streams_do_not_hold_database_connections(stack, pg, auth) -> None:
    def backends() -> int:
        return int(
            pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()[0]
        )

    before = backends()
    url = f"{stack.http}/events/violations/"
    # Half of them resume (they read the log first), more than the pool's 10 connections.
    resuming = {**auth, "Last-Event-ID": str(newest_event(pg))}
    async with contextlib.AsyncExitStack() as streams:
        opened = [
            await streams.enter_async_context(sse(url, resuming if n % 2 else auth))
            for n in range(24)
        ]
        insert_violation(pg, image="/media/many-streams.jpg")
        for events in opened:
            assert (await events.next_change())["data"][
                "violation_image"
            ] == "/media/many-streams.jpg"
        assert backends() - before < 5
        async with httpx.AsyncClient(base_url=stack.http, headers=auth) as client:
            assert (await client.get("/counters/", timeout=5)).status_code == 200


async def test_open_streams_give_their_request_thread_back(stack, pg, auth) -> None:
    # Django runs a request's sync code (the view, the login) in a thread that lasts as
    # long as the request: for a stream, days, and most of its idle memory.
    server = psutil.Process(stack.server.pid)
    before = server.num_threads()
    url = f"{stack.http}/events/violations/"
    async with contextlib.AsyncExitStack() as streams:
        opened = [await streams.enter_async_context(sse(url, auth)) for _ in range(20)]
        assert await extra_threads(server, before) < 5
        insert_violation(pg, image="/media/threadless.jpg")
        for events in opened:
            assert (await events.next_change())["data"][
                "violation_image"
            ] == "/media/threadless.jpg"


async def test_a_stream_gives_back_each_thread_it_reads_the_log_with(stack, pg, auth) -> None:
    # A resume this far behind reads the log in pages of 100 (sync code), a page before
    # each chunk: the first page runs in the request's thread, the later ones in a new
    # one; neither may stay.
    server = psutil.Process(stack.server.pid)
    before = server.num_threads()
    resume_after = newest_event(pg)
    ids = [
        row[0]
        for row in pg.execute(
            "INSERT INTO violation_humandetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " SELECT 1, CURRENT_DATE, LOCALTIME(0), '/media/page-' || n || '.jpg'"
            " FROM generate_series(1, 250) AS n RETURNING id"
        )
    ]
    url = f"{stack.http}/events/violations/"
    async with sse(url, {**auth, "Last-Event-ID": str(resume_after)}) as events:
        got = [(await events.next_change())["data"]["id"] for _ in ids]
        assert got == sorted(ids)
        assert await extra_threads(server, before) == 0


async def extra_threads(server: psutil.Process, before: int) -> int:
    """Threads the server has beyond `before`, once released ones have had time to end."""
    for _ in range(50):
        if server.num_threads() <= before:
            break
        await asyncio.sleep(0.1)
    return server.num_threads() - before


def acknowledge(pg, table: str, row_id: int, who: str = "anna") -> None:
    """As the acknowledge view does; from the admin or a shell it is the same INSERT."""
    pg.execute(
        "INSERT INTO realtime_acknowledgement"
        " (table_name, violation_id, acknowledged_by, acknowledged_at) VALUES (%s, %s, %s, now())",
        [table, row_id, who],
    )


def without_resume(data: str) -> Any:
    parsed = json.loads(data)
    parsed.pop("resume", None)
    return parsed


async def test_an_acknowledgement_is_its_own_sse_event_live_and_replayed(
    stack, pg, token, auth
) -> None:
    after = newest_event(pg)
    async with sse(f"{stack.http}/events/violations/", auth) as events:
        row_id = insert_violation(pg, "violation_lotodetections", image="/media/ack-sse.jpg")
        acknowledge(pg, "violation_lotodetections", row_id)
        live = [await events.next_event(), await events.next_event()]
    replay_url = f"{stack.http}/events/violations/?lastEventId={after}"
    async with sse(replay_url, auth) as events:
        replayed = [await events.next_event(), await events.next_event()]
    for first, second in (live, replayed):
        assert first.event == "message" and '"op":"INSERT"' in first.data
        assert second.event == "acknowledgement", "onmessage clients never see it"
        ack = json.loads(second.data)
        assert ack["table"] == "violation_lotodetections" and ack["row_id"] == row_id
        assert ack["acknowledged"] is True and ack["acknowledged_by"] == "anna"
        assert second.id and second.id.startswith("violations:")
        assert event_number(second.id) == ack["id"]
    # The same, but for where to resume from after each (realtime.pipeline.positions).
    assert [without_resume(e.data) for e in live] == [without_resume(e.data) for e in replayed]


async def test_websockets_carry_no_acknowledgement_live_or_replayed(stack, pg, token) -> None:
    after = newest_event(pg)
    async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
        row_id = insert_violation(pg, image="/media/ack-ws.jpg")
        acknowledge(pg, "violation_humandetections", row_id)
        later = insert_violation(pg, image="/media/after-ack-ws.jpg")
        frames = [await next_frame(ws), await next_frame(ws)]
    assert [(f["op"], f["data"]["id"]) for f in frames] == [("INSERT", row_id), ("INSERT", later)]
    async with websocket(f"{stack.ws}/ws/violations/?token={token}&lastEventId={after}") as ws:
        replayed = [await next_frame(ws), await next_frame(ws)]
    for frame in [*frames, *replayed]:
        assert event_number(frame.pop("resume")) == frame["id"]
    assert replayed == frames


async def test_the_rows_stream_redraws_an_acknowledged_row_live_and_replayed(
    stack, pg, token, auth
) -> None:
    after = newest_event(pg)
    rows_url = f"{stack.http}/events/violations/rows/?kind=ppe"
    async with sse(rows_url, auth) as rows:
        row_id = insert_violation(pg, "violation_ppedetections", image="/media/ack-row.jpg")
        acknowledge(pg, "violation_ppedetections", row_id, who="bert")
        live = [await rows.next_event(), await rows.next_event()]
    async with sse(f"{rows_url}&lastEventId={after}", auth) as rows:
        replayed = [await rows.next_event(), await rows.next_event()]
    for inserted, redrawn in (live, replayed):
        assert 'data-op="INSERT"' in inserted.data and "ack-button" in inserted.data
        assert f'id="violation-ppe-{row_id}"' in redrawn.data and 'data-op="STATE"' in redrawn.data
        assert "Acknowledged by bert" in redrawn.data
