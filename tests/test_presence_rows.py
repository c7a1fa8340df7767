"""Who is watching, in the database (issue 25): what a process's round writes and deletes,
what the readers take as gone, and the runtime's task that writes it, retries when the
database is away and deletes its rows when it stops (a server and browsers in
tests/test_presence.py).
"""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from realtime.access import scopes
from realtime.access.open_streams import Holder, Watch, open_streams
from realtime.alerts import presence
from realtime.alerts.models import Presence
from realtime.alerts.presence import PRESENCE_STALE, is_watched, watchers
from tests import browsing

pytestmark = [pytest.mark.django_db(transaction=True)]

NORTH = frozenset(range(1, 6))
SOUTH = frozenset(range(6, 11))


@pytest.fixture
def plant() -> dict[str, Any]:
    users = {name: browsing.browser_user(name) for name in ("alice", "bob", "carol")}
    for args in (
        ("set", "North", "--cameras", "1-5"),
        ("set", "South", "--cameras", "6-10"),
        ("grant", "North", "alice"),
        ("grant", "North", "carol"),
        ("grant", "South", "bob"),
    ):
        call_command("sites", *args, stdout=io.StringIO())
    scopes.forget()
    return users


def test_rows_not_refreshed_are_gone_and_a_round_keeps_only_the_watching(
    plant: dict[str, Any],
) -> None:
    alice, bob = plant["alice"], plant["bob"]
    presence.record("here", {alice.pk: NORTH, bob.pk: None})
    assert is_watched(3) and is_watched(None) and watchers(NORTH) == ["alice", "bob"]
    presence.record("here", {alice.pk: NORTH})
    assert not is_watched(None) and not is_watched(8) and watchers(SOUTH) == []

    # A killed server's row: not refreshed, gone for the readers after PRESENCE_STALE.
    Presence.objects.create(
        process="killed:1:0",
        user_id=bob.pk,
        username="bob",
        cameras=None,
        seen_at=timezone.now() - timedelta(seconds=PRESENCE_STALE + 1),
    )
    assert not is_watched(8) and watchers(None) == ["alice"]
    # And deleted by the next round of any process, once long stale.
    Presence.objects.filter(process="killed:1:0").update(
        seen_at=timezone.now() - timedelta(seconds=presence.PRESENCE_FORGET + 1)
    )
    presence.record("here", {alice.pk: NORTH})
    assert sorted(Presence.objects.values_list("process", flat=True)) == ["here"]

    presence.forget("here")
    assert not is_watched(3)


async def test_the_runtime_task_writes_retries_and_says_goodbye(
    plant: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = iter([True])
    real = presence.arecord

    async def flaky(process: str, watching: dict[int, Any]) -> None:
        if next(failures, False):
            raise OSError("database away")
        await real(process, watching)

    monkeypatch.setattr(presence, "arecord", flaky)
    monkeypatch.setattr(presence, "PRESENCE_EVERY", 0.2)
    handle = open_streams.open(
        Holder(plant["carol"].pk, None), lambda moved: None, "sse", NORTH, Watch(NORTH)
    )
    task = asyncio.create_task(presence.publish())
    try:
        for _ in range(50):
            if await database_sync_to_async(is_watched)(3):
                break
            await asyncio.sleep(0.1)
        assert await database_sync_to_async(watchers)(NORTH) == ["carol"]
        assert "could not record who is watching" in caplog.text
    finally:
        open_streams.close(handle)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not await database_sync_to_async(Presence.objects.exists)()


def test_the_fragment_is_for_a_login_and_never_a_redirect(client_of) -> None:
    from django.test import Client

    assert Client().get("/watching/").status_code == 401, "htmx swaps no error"
    anna = client_of("anna")  # no site exists: she sees, and watches, every camera
    presence.record("here", {get_user_model().objects.get(username="anna").pk: None})
    assert "Watching: 1 (anna)" in anna.get("/watching/").content.decode()
    presence.forget("here")
    assert "Nobody watching" in anna.get("/watching/").content.decode()
