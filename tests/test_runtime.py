"""What the server process sets up beside the bridge."""

from __future__ import annotations

import gc

import pytest

from realtime.runtime import ProcessRuntime

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("configured", [(12345, 11, 13), None])
async def test_the_server_process_collects_garbage_with_the_configured_thresholds(
    settings, configured
) -> None:
    previous = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    settings.REALTIME_GC_THRESHOLDS = configured
    settings.REALTIME_EMBEDDED_LISTENER = False
    process = ProcessRuntime()
    try:
        await process.ensure_started()
        assert gc.get_threshold() == (configured or (700, 10, 10))
    finally:
        await process.stop()
        gc.set_threshold(*previous)
