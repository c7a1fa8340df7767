"""The event log is pruned by age: by the command, and hourly by the active listener."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from realtime.listener import Listener, ListenerSettings
from tests.helpers import insert_violation


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

    settings = ListenerSettings(conninfo=db_url, retention=timedelta(days=7))
    listener = Listener(settings, forward)
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
