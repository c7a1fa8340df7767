"""realtime.streams.liveness: what the heartbeats say about the pipeline behind a server."""

from __future__ import annotations

import pytest

from realtime.streams.liveness import PipelineState, PipelineWatch, judge

ACTIVE = {"state": "active", "lag_seconds": 0.4}


def test_live_while_the_listener_is_active_current_and_heard() -> None:
    assert judge(ACTIVE, unheard_for=4.0) == PipelineState(True)


@pytest.mark.parametrize(
    ("listener", "unheard_for", "reason"),
    [
        (None, 0.0, "the database cannot be reached"),
        ({"state": "down"}, 0.0, "no listener is forwarding changes"),
        ({"state": "active", "lag_seconds": 45.2}, 0.0, "the listener is 45 s behind"),
        (ACTIVE, 21.0, "this server hears nothing from the listener"),
    ],
)
def test_not_live_says_why(listener, unheard_for, reason) -> None:
    assert judge(listener, unheard_for) == PipelineState(False, reason)


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
    assert told == [PipelineState(False, "no listener is forwarding changes"), PipelineState(True)]
    assert watch.generation == 2
