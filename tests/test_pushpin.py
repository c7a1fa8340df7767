"""Pushpin (Debian's package) in front of Daphne for SSE, through django-eventstream's GRIP."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    ROOT,
    Process,
    Stack,
    event_number,
    free_port,
    insert_violation,
    sse,
    wait_for_http,
    xdist_worker,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PUSHPIN = shutil.which("pushpin")
KEY = "pushpin-test-key"


def free_offsets(count: int = 1) -> list[int]:
    """port_offsets under which Pushpin's fixed ports (5560-5563) are all free. Each
    pytest-xdist worker looks among candidates of its own (a check is no reservation: two
    workers checking the same range would both find it free), all below 32768, where the
    kernel's ports for free_port() and for outgoing connections begin."""
    worker, workers = xdist_worker()
    found: list[int] = []
    for offset in range(20_000, 27_200, 97)[worker::workers]:
        try:
            for port in range(5560, 5564):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        found.append(offset)
        if len(found) == count:
            return found
    raise AssertionError("no free port range for Pushpin")


def pushpin_config(tmp: Path, http_port: int, offset: int, upstream: int) -> Path:
    text = (ROOT / "deploy" / "pushpin" / "pushpin.conf").read_text()
    for key, value in {
        "rundir": str(tmp / "run"),
        "logdir": str(tmp / "log"),
        "http_port": str(http_port),
        "port_offset": str(offset),
        "sig_key": KEY,
    }.items():
        text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
    (tmp / "run").mkdir()
    (tmp / "log").mkdir()
    (tmp / "routes").write_text(f"* 127.0.0.1:{upstream}\n")
    config = tmp / "pushpin.conf"
    config.write_text(text)
    return config


@pytest.fixture
def behind_pushpin(database_url: str, tmp_path: Path, token: str) -> Iterator[tuple[str, Stack]]:
    if PUSHPIN is None:
        pytest.skip("Debian's pushpin package is not installed (.ci/run installs it)")
    [offset] = free_offsets()
    grip_url = f"http://127.0.0.1:{5561 + offset}?iss=pushpin&key={KEY}"
    (tmp_path / "stack").mkdir()
    stack = Stack.start("memory", database_url, None, tmp_path / "stack", GRIP_URL=grip_url)
    http_port = free_port()
    config = pushpin_config(tmp_path, http_port, offset, stack.port)
    pushpin = Process(
        [PUSHPIN, "--config", str(config), "--merge-output"], {}, tmp_path / "pushpin.out"
    ).start()
    try:
        wait_for_http(f"http://127.0.0.1:{http_port}/accounts/login/", timeout=30)
        wait_for_held_streams(f"http://127.0.0.1:{http_port}", token)
        yield f"http://127.0.0.1:{http_port}", stack
    finally:
        pushpin.stop()
        stack.stop()


def wait_for_held_streams(base: str, token: str, timeout: float = 30.0) -> None:
    """Pushpin proxies plain requests before its handler takes held streams: until then it
    answers a stream with 500 "Accept service unavailable." (a third of the runs here), or
    not at all for a while (once in a CI run)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        try:
            with httpx.stream(
                "GET", f"{base}/events/violations/", headers=headers, timeout=2.0
            ) as response:
                if response.status_code == 200:
                    return
                outcome = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:  # no answer yet (seen: a read timeout)
            outcome = repr(exc)
        assert time.monotonic() < deadline, f"Pushpin holds no stream: {outcome}"
        time.sleep(0.2)


async def test_sse_through_pushpin_delivers_and_resumes(behind_pushpin, pg, token) -> None:
    base, stack = behind_pushpin
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/events/violations/"
    async with sse(url, auth) as events:
        # Pushpin holds the stream: Django's response to it is already complete (Daphne
        # logs a request when it finishes), so live events come from GRIP publishing.
        assert re.search(r'"GET /events/violations/" 200', stack.server.log())
        # When to come back if it is cut, spread so that a crowd does not come back at once.
        assert events.retry is not None and 1000 <= events.retry <= 5000
        row_id = insert_violation(pg, image="/media/via-pushpin.jpg")
        change = await events.next_change(timeout=15)
        last_id = events.last_id
    assert change["data"]["id"] == row_id
    assert last_id and last_id.startswith("violations:") and event_number(last_id) == change["id"]

    missed = [insert_violation(pg, image=f"/media/pushpin-missed-{n}.jpg") for n in range(2)]
    async with sse(url, {**auth, "Last-Event-ID": last_id}) as events:
        replayed: list[dict[str, Any]] = []
        while len(replayed) < len(missed):
            change = await events.next_change(timeout=15)
            # A resume may send the last change again (at least once, dropped by id: its
            # position's horizon may not have seen it committed); nothing else twice.
            if change["data"]["id"] != row_id:
                replayed.append(change)
        live_id = insert_violation(pg, image="/media/pushpin-live.jpg")
        live = await events.next_change(timeout=15)
    assert [c["data"]["id"] for c in replayed] == missed
    assert live["data"]["id"] == live_id


async def test_pushpin_refuses_without_credentials(behind_pushpin) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{behind_pushpin[0]}/events/violations/")
    assert response.status_code == 401


async def test_through_pushpin_a_user_gets_their_sites_changes_only(behind_pushpin, pg) -> None:
    """Pushpin holds the streams of each scope (realtime.access.scopes): the listener publishes a
    change to each scope some user has that keeps it."""
    import io

    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from realtime.access import scopes
    from realtime.models import ApiToken

    def north_for_alice() -> str:
        alice = get_user_model().objects.create_user("alice", password="a-long-password-1")
        for args in (("set", "North", "--cameras", "1-3"), ("grant", "North", "alice")):
            call_command("sites", *args, stdout=io.StringIO())
        call_command("sites", "set", "South", "--cameras", "4-6", stdout=io.StringIO())
        scopes.forget()
        return ApiToken.issue(alice)

    base, _ = behind_pushpin
    token = await database_sync_to_async(north_for_alice)()
    await asyncio.sleep(scopes.every_scope.CACHE_SECONDS + 1)  # the listener's scopes
    async with sse(f"{base}/events/violations/", {"Authorization": f"Bearer {token}"}) as events:
        south = insert_violation(pg, camera_id=4, image="/media/pushpin-south.jpg")
        north = insert_violation(pg, camera_id=2, image="/media/pushpin-north.jpg")
        change = await events.next_change(timeout=15)
        assert change["data"]["id"] == north, f"not south's {south}"
        assert events.last_id and events.last_id.startswith("violations~1-3:")
        assert event_number(events.last_id) == change["id"]


async def test_a_change_too_long_for_a_frame_reaches_pushpin_reduced(
    behind_pushpin, pg, token
) -> None:
    """Published to Pushpin in the same reduced form as every other route (#22)."""
    base, _ = behind_pushpin
    async with sse(f"{base}/events/violations/", {"Authorization": f"Bearer {token}"}) as events:
        big = insert_violation(pg, image="/media/" + "p" * 1_100_000)
        change = await events.next_change(timeout=15)
    assert change["data"]["id"] == big
    assert (change["truncated"], change["omitted"]) == (True, ["violation_image"])
    assert change["links"] == {"page": f"/violations/human/{big}/"}


async def test_a_resume_through_pushpin_gets_a_change_that_committed_late(
    behind_pushpin, pg, db_url, token
) -> None:
    """Issue 22, finding 7, on Pushpin's path: the position of the last event Pushpin
    delivered carries its horizon, and Django's replay for Pushpin obeys it."""
    import psycopg

    base, _ = behind_pushpin
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/events/violations/"
    with psycopg.connect(db_url) as slow:
        late = insert_violation(slow, image="/media/pushpin-late.jpg")
        async with sse(url, auth) as events:
            early = insert_violation(pg, image="/media/pushpin-early.jpg")
            assert (await events.next_change(timeout=15))["data"]["id"] == early
            last_id = events.last_id
        slow.commit()
    insert_violation(pg, image="/media/pushpin-after.jpg")
    assert last_id is not None
    images: list[str] = []
    async with sse(url, {**auth, "Last-Event-ID": last_id}) as events:
        while "/media/pushpin-after.jpg" not in images:
            images.append((await events.next_change(timeout=15))["data"]["violation_image"])
    assert "/media/pushpin-late.jpg" in images, f"row {late} committed late"


# --- streams Pushpin holds end when their right ends, as the direct ones ----------------------


def two_operators() -> dict[str, str]:
    """alice (North and South) and bob (South), each with a token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from realtime.access import scopes
    from realtime.models import ApiToken

    tokens = {}
    for name in ("alice", "bob"):
        user = get_user_model().objects.create_user(name, password="a-long-password-1")
        tokens[name] = ApiToken.issue(user)
    for args in (
        ("set", "North", "--cameras", "1-3"),
        ("set", "South", "--cameras", "4-6"),
        ("grant", "North", "alice"),
        ("grant", "South", "alice"),
        ("grant", "South", "bob"),
    ):
        call_command("sites", *args, stdout=io.StringIO())
    scopes.forget()
    return tokens


async def operators_behind(base: str) -> dict[str, str]:
    from channels.db import database_sync_to_async

    from realtime.access import scopes

    tokens: dict[str, str] = await database_sync_to_async(two_operators)()
    await asyncio.sleep(scopes.every_scope.CACHE_SECONDS + 1)  # the listener's scopes
    # Pushpin's handler takes held streams some time after it answers plain requests.
    await asyncio.to_thread(wait_for_held_streams, base, tokens["bob"])
    return tokens


async def ended_within(events: Any, seconds: float) -> list[str]:
    """The events a held stream sends until Pushpin closes it; fails after `seconds`."""
    sent: list[str] = []
    deadline = asyncio.get_running_loop().time() + seconds
    with pytest.raises(EOFError):
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                event = await events.next_event(timeout=max(remaining, 0.001))
            except TimeoutError:
                raise AssertionError(f"still open after {seconds} s; sent {sent}") from None
            sent.append(f"{event.event}: {event.data}")
    return sent


def recovered(pushpin_log: Path, since: int, streams: int, timeout: float = 10.0) -> None:
    """Until Pushpin asked Django for what each of the held streams opened since `since`
    (bytes of its log) may have missed: about a second after it subscribes a stream, it asks
    on the stream's behalf (link=next&recover=true, with es-meta), and Django's answer to
    that would end a deactivated user's stream by itself, hiding what is tested here."""
    deadline = time.monotonic() + timeout
    while pushpin_log.read_bytes()[since:].count(b"[handler] GET ") < streams:
        assert time.monotonic() < deadline, "Pushpin did not ask to recover"
        time.sleep(0.05)


async def still_open(events: Any, pg: Any, camera_id: int) -> None:
    """The stream still gets a change of its cameras."""
    row_id = insert_violation(pg, camera_id=camera_id, image="/media/pushpin-still-open.jpg")
    while (await events.next_change(timeout=15))["data"]["id"] != row_id:
        pass  # one it had before


def refused(base: str, token: str) -> int:
    response = httpx.get(
        f"{base}/events/violations/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return response.status_code


@asynccontextmanager
async def alice_and_bob(base: str, pushpin_log: Path) -> AsyncIterator[tuple[Any, Any, str]]:
    """alice's and bob's held streams, settled (recovered), and alice's token."""
    tokens = await operators_behind(base)
    url = f"{base}/events/violations/"
    since = await asyncio.to_thread(lambda: pushpin_log.stat().st_size)
    async with (
        sse(url, {"Authorization": f"Bearer {tokens['alice']}"}) as alice,
        sse(url, {"Authorization": f"Bearer {tokens['bob']}"}) as bob,
    ):
        await asyncio.to_thread(recovered, pushpin_log, since, streams=2)
        yield alice, bob, tokens["alice"]


async def test_revoking_a_token_ends_its_held_stream_and_no_one_elses(
    behind_pushpin, pg, tmp_path
) -> None:
    from channels.db import database_sync_to_async
    from django.core.management import call_command

    base, _ = behind_pushpin
    async with alice_and_bob(base, tmp_path / "pushpin.out") as (alice, bob, token):
        await database_sync_to_async(call_command)(
            "issue_token",
            f"--revoke={token[:8]}",
            stdout=io.StringIO(),  # it may begin with -
        )
        await ended_within(alice, 10)
        await still_open(bob, pg, camera_id=5)
    assert await asyncio.to_thread(refused, base, token) == 401


async def test_deactivating_a_user_ends_their_held_stream_and_no_one_elses(
    behind_pushpin, pg, tmp_path
) -> None:
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    base, _ = behind_pushpin
    async with alice_and_bob(base, tmp_path / "pushpin.out") as (alice, bob, token):
        # As an administrator's script would: no signal, no save().
        await database_sync_to_async(get_user_model().objects.filter(username="alice").update)(
            is_active=False
        )
        sent = await ended_within(alice, 10)
        assert [e for e in sent if e.startswith("stream-error")], sent
        await still_open(bob, pg, camera_id=5)
    assert await asyncio.to_thread(refused, base, token) == 401


async def test_changing_a_users_sites_ends_their_held_stream_and_it_resumes_with_the_new(
    behind_pushpin, pg, tmp_path
) -> None:
    from channels.db import database_sync_to_async
    from django.core.management import call_command

    base, _ = behind_pushpin
    async with alice_and_bob(base, tmp_path / "pushpin.out") as (alice, bob, token):
        south_before = insert_violation(pg, camera_id=4, image="/media/pushpin-south-before.jpg")
        assert (await alice.next_change(timeout=15))["data"]["id"] == south_before
        await database_sync_to_async(call_command)(
            "sites", "revoke", "South", "alice", stdout=io.StringIO()
        )
        sent = await ended_within(alice, 10)
        assert not [e for e in sent if e.startswith("stream-error")], sent
        last_id = alice.last_id
        await still_open(bob, pg, camera_id=5)
    # Meanwhile: one of each site's. Resumed: North's (still hers), not South's (committed
    # first, so it would come first); then live, the same.
    insert_violation(pg, camera_id=6, image="/media/pushpin-south-after.jpg")
    north_after = insert_violation(pg, camera_id=2, image="/media/pushpin-north-after.jpg")
    auth = {"Authorization": f"Bearer {token}", "Last-Event-ID": last_id}
    async with sse(f"{base}/events/violations/", auth) as again:
        assert (await again.next_change(timeout=15))["data"]["id"] == north_after
        assert again.last_id and again.last_id.startswith("violations~1-3:")
        insert_violation(pg, camera_id=4, image="/media/pushpin-south-live.jpg")
        north_live = insert_violation(pg, camera_id=1, image="/media/pushpin-north-live.jpg")
        assert (await again.next_change(timeout=15))["data"]["id"] == north_live


async def test_held_streams_take_each_change_from_pushpin_without_asking_django(
    behind_pushpin, pg, token
) -> None:
    """Issue #27: a published change names the one published before it on its stream
    (prev-id), as the held stream's last id does, so Pushpin delivers it itself. Without
    that, every change made every held stream ask Django for it (a `recover` request, a
    read of the log): one request per client per change."""
    base, stack = behind_pushpin
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/events/violations/"
    async with sse(url, auth) as warm:
        # A change the listener has published: the stream below has a chain to follow (a
        # listener's first change makes every held stream recover once).
        before = insert_violation(pg, image="/media/pushpin-before.jpg")
        assert (await warm.next_change(timeout=15))["data"]["id"] == before
    async with sse(url, auth) as events:
        recovers = stack.server.log().count("recover=true")
        rows = [insert_violation(pg, image=f"/media/pushpin-chain-{n}.jpg") for n in range(3)]
        got = [(await events.next_change(timeout=15))["data"]["id"] for _ in rows]
    assert got == rows
    assert (events.last_id or "").startswith("violations:")  # the whole position, as before
    assert stack.server.log().count("recover=true") == recovers, "a change was fetched from Django"


async def test_a_percent_sign_arrives_as_written_live_and_replayed(
    behind_pushpin, pg, token
) -> None:
    """Pushpin's build-id filter unescaped `%%` in what it passed; the streams no longer
    use it, so Django's answers are unescaped by Django and items are published as is."""
    base, _ = behind_pushpin
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/events/violations/"
    async with sse(url, auth) as events:
        live = insert_violation(pg, image="/media/100%-sure %% 50%25.jpg")
        change = await events.next_change(timeout=15)
        last_id = events.last_id
    assert (change["data"]["id"], change["data"]["violation_image"]) == (
        live,
        "/media/100%-sure %% 50%25.jpg",
    )
    missed = insert_violation(pg, image="/media/%I missed 10%.jpg")
    async with sse(url, {**auth, "Last-Event-ID": last_id or ""}) as events:
        replayed = await events.next_change(timeout=15)
        if replayed["data"]["id"] == live:  # a resume may repeat the last change (promise 2)
            replayed = await events.next_change(timeout=15)
    assert (replayed["data"]["id"], replayed["data"]["violation_image"]) == (
        missed,
        "/media/%I missed 10%.jpg",
    )
