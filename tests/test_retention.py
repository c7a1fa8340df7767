"""The event log is pruned by age: by the command, and hourly by the active listener."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from realtime.pipeline.listener import LogListener, LogListenerSettings
from tests.helpers import insert_violation, listener_under_test, running


def age_events(pg, days: int) -> None:
    pg.execute(
        "UPDATE realtime_event SET created_at = created_at - make_interval(days => %s)", [days]
    )


def test_prune_events_deletes_only_what_is_older_than_the_retention(pg) -> None:
    insert_violation(pg, image="/media/old.jpg")
    age_events(pg, 8)
    insert_violation(pg, image="/media/new.jpg")
    out = io.StringIO()
    call_command("prune_events", stdout=out)  # default retention: 7 days
    assert out.getvalue().startswith("pruned ")
    images = [row[0] for row in pg.execute("SELECT data->>'violation_image' FROM realtime_event")]
    assert images == ["/media/new.jpg"]
    # How far the log is pruned (sql/010): a client resuming below it gets a stream-reset.
    [(through, kept)] = pg.execute(
        "SELECT through, (SELECT min(id) FROM realtime_event) FROM realtime_log_pruned"
    ).fetchall()
    assert through == kept - 1


def test_prune_events_takes_an_age_and_names_a_bad_one(pg) -> None:
    insert_violation(pg, image="/media/hour-old.jpg")
    pg.execute("UPDATE realtime_event SET created_at = created_at - interval '2 hours'")
    call_command("prune_events", "--older-than", "1h", stdout=io.StringIO())
    assert pg.execute("SELECT count(*) FROM realtime_event").fetchone()[0] == 0
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune_events", "--older-than", "a week")


async def test_the_active_listener_prunes_by_itself(db_url, pg) -> None:
    insert_violation(pg, image="/media/ancient.jpg")
    age_events(pg, 30)

    async def forward(events: object) -> None:
        pass

    settings = LogListenerSettings(conninfo=db_url, retention=timedelta(days=7))
    listener = LogListener(settings, forward)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.wait_active(), 10)
        for _ in range(100):
            if pg.execute("SELECT count(*) FROM realtime_event").fetchone()[0] == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert pg.execute("SELECT count(*) FROM realtime_event").fetchone()[0] == 0


async def test_pruning_a_big_backlog_stops_neither_forwarding_nor_heartbeats(
    db_url, pg, marker
) -> None:
    """Pruning is a side task on its own connection, in steps, beside the forwarding loop."""
    pg.execute(
        "INSERT INTO realtime_event (table_name, op, data, created_at)"
        " SELECT 'violation_humandetections', 'INSERT', json_build_object('id', -n),"
        " now() - interval '30 days' FROM generate_series(1, 300000) n"
    )
    # Already forwarded, as far as listeners go: only the pruning is left to do.
    pg.execute(
        "INSERT INTO realtime_listener_state (name, scan_from, holder)"
        " VALUES ('default', pg_snapshot_xmin(pg_current_snapshot()), 'test')"
        " ON CONFLICT (name) DO UPDATE SET scan_from = EXCLUDED.scan_from"
    )
    listener, got = listener_under_test(db_url, retention=timedelta(days=7))
    async with running(listener):
        beat = pg.execute("SELECT heartbeat_at FROM realtime_listener_state").fetchone()[0]
        insert_violation(pg, image=marker)
        await got.wait_for_images({marker}, timeout=5)
        await asyncio.sleep(1.0)  # two catch-ups, with their heartbeats
        still_old = pg.execute(
            "SELECT count(*) FROM realtime_event WHERE created_at < now() - interval '7 days'"
        ).fetchone()[0]
        later = pg.execute("SELECT heartbeat_at FROM realtime_listener_state").fetchone()[0]
        for _ in range(200):  # and the backlog goes, in the end
            old = pg.execute(
                "SELECT count(*) FROM realtime_event WHERE created_at < now() - interval '7 days'"
            ).fetchone()[0]
            if old == 0:
                break
            await asyncio.sleep(0.1)
    assert still_old > 0, "the row was forwarded while the backlog was still being pruned"
    assert later > beat, "heartbeats went on meanwhile"
    assert old == 0
