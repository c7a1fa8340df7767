"""realtime.streams.liveness: what the heartbeats say about the pipeline behind a server."""

from __future__ import annotations

import json

import pytest

from realtime.streams.liveness import PipelineState, PipelineWatch, judge

ACTIVE = {"state": "active", "lag_seconds": 0.4}


def test_live_while_the_listener_is_active_current_and_heard() -> None:
    assert judge(ACTIVE, unheard_for=4.0) == PipelineState(True)


@pytest.mark.parametrize(
    ("listener", "unheard_for", "reason", "code"),
    [
        (None, 0.0, "the database cannot be reached", "database"),
        ({"state": "down"}, 0.0, "no listener is forwarding changes", "no-listener"),
        ({"state": "active", "lag_seconds": 45.2}, 0.0, "the listener is 45 s behind", "behind"),
        (ACTIVE, 21.0, "this server hears nothing from the listener", "unheard"),
    ],
)
def test_not_live_says_why(listener, unheard_for, reason, code) -> None:
    """In English for every client, and as a code a page words in its own language."""
    state = judge(listener, unheard_for)
    assert (state.live, state.reason, state.code) == (False, reason, code)
    beat = json.loads(state.as_json())
    assert (beat["pipeline"], beat["reason"], beat["code"]) == ("down", reason, code)
    if code == "behind":
        assert beat["lag_seconds"] == 45


def test_the_lag_limit_is_a_setting(settings) -> None:
    settings.REALTIME_PIPELINE_LAG_LIMIT = 60.0
    assert judge({"state": "active", "lag_seconds": 45.2}, 0.0).live


def test_a_change_of_state_is_told_once() -> None:
    watch = PipelineWatch()
    told: list[PipelineState] = []
    watch.on_change(lambda: told.append(watch.state))
    watch.update()
    watch.listener = {"state": "down"}
    watch.update()
    watch.update()
    watch.listener = dict(ACTIVE)
    watch.update()
    down = PipelineState(False, "no listener is forwarding changes", "no-listener")
    assert told == [down, PipelineState(True)]
    assert watch.generation == 2
