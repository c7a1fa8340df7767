"""A resume point the log cannot serve means the same on SSE and WebSocket (issue 29,
item 3): a `stream-reset` first (an event on SSE, a frame on a WebSocket), then the live
changes; one it can serve replays the same changes on both.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import (
    insert_violation,
    memory_stack,
    newest_event,
    next_frame,
    prune_log,
    sse,
    websocket,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


stack = memory_stack("resets")


def resume_point(pg: Any, case: str) -> str:
    seen = insert_violation(pg, image="/media/seen.jpg")
    assert seen
    seen_event = newest_event(pg)
    insert_violation(pg, image="/media/pruned.jpg")
    insert_violation(pg, image="/media/kept.jpg")
    if case == "servable":
        return str(seen_event)
    # Retention pruned the events after the one the client holds.
    prune_log(pg, newest_event(pg) - 1)
    return {
        "pruned": str(seen_event),
        "pruned, with its horizon": f"{seen_event}.1",
        "ahead of the log": str(newest_event(pg) + 1000),
        "zero": "0",
    }[case]


CASES = ["pruned", "pruned, with its horizon", "ahead of the log", "zero"]


@pytest.mark.parametrize("case", CASES)
async def test_a_resume_point_the_log_cannot_serve_resets_both_transports(
    stack, pg, token, case
) -> None:
    position = resume_point(pg, case)
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}&lastEventId={position}") as ws,
        sse(f"{stack.http}/events/violations/?lastEventId={position}", auth) as events,
    ):
        reset = await next_frame(ws)
        assert reset["type"] == "stream-reset" and set(reset) == {"type", "resume"}
        assert (await events.next_event()).event == "stream-reset"
        live = insert_violation(pg, image="/media/after-the-reset.jpg")
        frame = await next_frame(ws)
        assert frame["data"]["id"] == live, "nothing of the log is replayed after a reset"
        assert (await events.next_change())["data"]["id"] == live
    # Resuming from the reset's position is resuming, not another reset.
    async with websocket(
        f"{stack.ws}/ws/violations/?token={token}&lastEventId={reset['resume']}"
    ) as ws:
        again = insert_violation(pg, image="/media/after-resuming.jpg")
        got = await next_frame(ws)
        while got["data"]["id"] != again:
            assert got.get("type") != "stream-reset"
            got = await next_frame(ws)


async def test_a_resume_point_the_log_can_serve_replays_the_same_on_both(stack, pg, token) -> None:
    position = resume_point(pg, "servable")
    last = newest_event(pg)
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        websocket(f"{stack.ws}/ws/violations/?token={token}&lastEventId={position}") as ws,
        sse(f"{stack.http}/events/violations/?lastEventId={position}", auth) as events,
    ):
        frames = [await next_frame(ws)]
        while frames[-1]["id"] != last:
            frames.append(await next_frame(ws))
        changes = [await events.next_change()]
        while changes[-1]["id"] != last:
            changes.append(await events.next_change())
    assert [f["id"] for f in frames] == [c["id"] for c in changes]
    assert [f["data"]["violation_image"] for f in frames] == [
        "/media/pruned.jpg",
        "/media/kept.jpg",
    ]
