"""What a database role, a Redis neighbour and a token holder cannot do (docs/guarantees.md).

The reproductions of the black-box probe of issue #13, each against the real services.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from channels.db import database_sync_to_async
from django_eventstream.views import Listener as StreamListener
from django_eventstream.views import get_listener_manager
from psycopg import sql
from websockets.exceptions import InvalidStatus

from realtime.pipeline.bus import change_message
from realtime.pipeline.changes import ChangeEvent
from realtime.streams.sse_fanout import wake_row_streams
from realtime.violations import kinds
from tests.helpers import insert_violation, listener_under_test, running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notifier(db_url: str) -> Iterator[str]:
    """A role that may connect and INSERT into one table, nothing else (a detector's)."""
    role = f"detector_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        admin.execute(sql.SQL("GRANT INSERT ON violation_ppedetections TO {}").format(ident))
        admin.execute(
            sql.SQL("GRANT USAGE ON SEQUENCE violation_ppedetections_id_seq TO {}").format(ident)
        )
    yield psycopg.conninfo.make_conninfo(db_url, user=role)
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        admin.execute(sql.SQL("DROP ROLE {}").format(ident))


def next_event_id(pg: Any) -> int:
    [(last, called)] = pg.execute(
        "SELECT last_value, is_called FROM realtime_event_id_seq"
    ).fetchall()
    return int(last) + 1 if called else int(last)


async def test_a_forged_notification_shows_nothing_and_hides_no_real_violation(
    db_url, pg, notifier, marker
) -> None:
    """The probe's reproduction: a forged DELETE that takes the next event id, then a real row."""
    listener, got = listener_under_test(db_url)
    async with running(listener):
        with psycopg.connect(notifier, autocommit=True) as rogue:
            taken = next_event_id(pg)
            forged = [
                {
                    "id": taken,
                    "table": "violation_ppedetections",
                    "op": "DELETE",
                    "data": {"id": 1, "camera_id": 6},
                },
                {
                    "id": taken + 1,
                    "table": "violation_ppedetections",
                    "op": "INSERT",
                    "data": {
                        "id": "not a number",
                        "camera_id": 6,
                        "violation_image": "/media/forged.jpg",
                    },
                },
            ]
            for payload in forged:
                rogue.execute("SELECT pg_notify('realtime_changed_v1', %s)", [json.dumps(payload)])
            rogue.execute(
                "INSERT INTO violation_ppedetections (camera_id, violation_image) VALUES (6, %s)",
                [marker],
            )
        await got.wait_for_images({marker}, timeout=10)
        await asyncio.sleep(1.2)  # and two catch-up scans
    assert [e["op"] for e in got.events if e["op"] == "DELETE"] == [], "the forged DELETE"
    assert "/media/forged.jpg" not in got.images()
    [real] = [e for e in got.events if e["data"].get("violation_image") == marker]
    [(logged_id,)] = pg.execute(
        "SELECT id FROM realtime_event WHERE data->>'violation_image' = %s", [marker]
    ).fetchall()
    assert real["id"] == logged_id == taken, "the real row has the id the forgery claimed"


async def test_a_forged_notification_changes_nothing_it_names(db_url, pg, marker) -> None:
    """A payload's data is never taken for the row: an UPDATE the log does not hold."""
    row_id = insert_violation(pg, "violation_ppedetections", camera_id=3, image=marker)
    [(logged,)] = pg.execute(
        "SELECT id FROM realtime_event WHERE data->>'violation_image' = %s", [marker]
    ).fetchall()
    listener, got = listener_under_test(db_url)
    async with running(listener):
        pg.execute(
            "SELECT pg_notify('realtime_changed_v1', %s)",
            [
                json.dumps(
                    {
                        "id": logged,
                        "table": "violation_ppedetections",
                        "op": "UPDATE",
                        "data": {"id": row_id, "camera_id": 3, "violation_image": "/media/x"},
                    }
                )
            ],
        )
        insert_violation(pg, image="/media/after-the-forgery.jpg")
        await got.wait_for_images({"/media/after-the-forgery.jpg"})
    assert "/media/x" not in got.images()


@pytest.fixture
async def row_stream() -> AsyncIterator[StreamListener]:
    """What django-eventstream registers for one open /events/violations/rows/ stream."""
    listener = StreamListener()
    listener.channels = {"table/*/*"}
    listener.assign_loop()
    manager = get_listener_manager()
    manager.add_listener(listener)
    yield listener
    manager.remove_listener(listener)


async def test_a_row_that_cannot_be_drawn_does_not_keep_the_others_off_the_table(
    row_stream,
) -> None:
    await kinds.arefresh()
    broken = change_message(
        {"id": 7, "table": "violation_ppedetections", "op": "INSERT", "data": {"id": {"x": 1}}}
    )
    broken["frame"] = broken["frame"][:-3]  # not JSON any more
    good = change_message(
        {
            "id": 8,
            "table": "violation_ppedetections",
            "op": "INSERT",
            "data": {"id": 5, "camera_id": 1, "violation_image": "/media/drawn.jpg"},
        }
    )
    wake_row_streams([broken, good])
    [event] = row_stream.channel_items["table/*/*"]
    assert event.id == "8" and "/media/drawn.jpg" in event.data


# --- a neighbour on the same Redis ----------------------------------------------------------


@pytest.fixture
def neighbour_db(db_url: str) -> Iterator[str]:
    """A second deployment's database (staging beside production), migrated."""
    from tests.helpers import manage, scratch_database

    with scratch_database(db_url, f"neighbour_{uuid.uuid4().hex[:8]}") as url:
        manage(url, "migrate", "--noinput")
        yield url


@pytest.mark.e2e
async def test_two_deployments_on_one_redis_see_nothing_of_each_other(
    database_url, neighbour_db, pg, tmp_path
) -> None:
    from django.conf import settings

    from tests.helpers import Stack, manage, next_frame, websocket

    redis = settings.TEST_REDIS_URL.rsplit("/", 1)[0]
    for folder in ("ours", "theirs"):
        (tmp_path / folder).mkdir()
    # Database numbers differ; Redis pub/sub does not care about them.
    ours = Stack.start("redis", database_url, f"{redis}/12", tmp_path / "ours")
    theirs = Stack.start("redis", neighbour_db, f"{redis}/13", tmp_path / "theirs")
    try:
        their_token = manage(neighbour_db, "shell", "-c", ISSUE_TOKEN).strip().splitlines()[-1]
        with psycopg.connect(neighbour_db, autocommit=True) as their_pg:
            # Both logs give out the same ids from here.
            their_pg.execute("SELECT setval('realtime_event_id_seq', %s)", [next_event_id(pg) + 10])
            pg.execute("SELECT setval('realtime_event_id_seq', %s)", [next_event_id(pg) + 10])
            async with websocket(f"{theirs.ws}/ws/violations/?token={their_token}") as ws:
                insert_violation(pg, image="/media/ours.jpg")
                await asyncio.sleep(0.5)  # time for ours to reach theirs, if it could
                insert_violation(their_pg, image="/media/theirs.jpg")
                frame = await next_frame(ws)
                assert frame["data"]["violation_image"] == "/media/theirs.jpg"
                with pytest.raises(TimeoutError):
                    await next_frame(ws, 1.0)
        ours_id = pg.execute(
            "SELECT id FROM realtime_event WHERE data->>'violation_image' = '/media/ours.jpg'"
        ).fetchone()[0]
        assert frame["id"] == ours_id, "the same event id: theirs was not dropped for ours"
    finally:
        ours.stop()
        theirs.stop()


ISSUE_TOKEN = (
    "from django.contrib.auth import get_user_model; from realtime.models import ApiToken;"
    " u = get_user_model().objects.create_user('neighbour'); print(ApiToken.issue(u))"
)


async def test_a_batch_of_another_deployment_is_dropped_even_under_the_same_prefix(pg) -> None:
    """REALTIME_BUS_PREFIX set alike on two deployments: their batches still do not mix."""
    from realtime.pipeline import bus
    from realtime.streams.bridge import Bridge

    bridge = Bridge()
    got: list[Any] = []
    bridge.subscribe(got.extend)
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.ready.wait(), 10)
        change: ChangeEvent = {
            "id": 10**12,
            "table": "violation_ppedetections",
            "op": "INSERT",
            "data": {"id": 1},
        }
        foreign = {**bus.batches([change])[0], "deployment": "7000000000000000000/elsewhere"}
        await bus.channel_layer().group_send(bus.GROUP, foreign)
        await bus.publish([{**change, "id": 10**12 + 1}])
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [m["id"] for m in got] == [10**12 + 1]
    assert bridge.foreign == 1


# --- tokens ---------------------------------------------------------------------------------


@pytest.fixture
def superuser_token() -> str:
    from django.contrib.auth import get_user_model

    from realtime.models import ApiToken

    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "a-long-pw-12")
    return ApiToken.issue(user)


def test_a_token_opens_no_admin_page_and_makes_no_change(superuser_token, pg) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    row_id = insert_violation(pg, "violation_ppedetections")
    bearer = {"Authorization": f"Bearer {superuser_token}"}
    client = Client()
    assert client.get("/", headers=bearer).status_code == 200, "pages: yes"
    for path in ["/admin/", "/admin/auth/user/add/", f"/admin/?token={superuser_token}"]:
        response = client.get(path, headers=bearer)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        assert superuser_token not in response["Location"], "nor in a redirect"
    created = client.post(
        f"/admin/auth/user/add/?token={superuser_token}",
        {"username": "made-by-token", "password1": "x" * 20, "password2": "x" * 20},
    )
    assert created.status_code in (302, 403)
    assert not get_user_model().objects.filter(username="made-by-token").exists()
    acknowledged = client.post(f"/violations/ppe/{row_id}/acknowledge/", headers=bearer)
    assert acknowledged.status_code in (302, 403)
    assert pg.execute("SELECT count(*) FROM realtime_acknowledgement").fetchone() == (0,)
    for path in ["/accounts/password_change/", "/accounts/logout/"]:
        assert client.get(f"{path}?token={superuser_token}").status_code != 200


def test_tokens_expire_and_are_listed_and_revoked(operator_token_user) -> None:
    import io
    import time as wall

    from django.core.management import call_command
    from django.test import Client

    def issue(*args: str) -> str:
        out = io.StringIO()
        call_command("issue_token", *args, stdout=out)
        return out.getvalue()

    short = issue("watcher", "--expires", "1s").strip().splitlines()[-1]
    kept = issue("watcher", "--expires", "30d").strip().splitlines()[-1]
    listed = issue("--list", "watcher")
    assert short[:8] in listed and kept[:8] in listed and short not in listed
    assert "expires" in listed
    client = Client()
    wall.sleep(1.5)
    assert (
        client.get("/events/violations/", headers={"Authorization": f"Bearer {short}"}).status_code
        == 401
    )
    ok = client.get("/counters/", headers={"Authorization": f"Bearer {kept}"})
    assert ok.status_code == 200
    assert "revoked" in issue(f"--revoke={kept[:8]}")
    assert client.get("/counters/", headers={"Authorization": f"Bearer {kept}"}).status_code == 302


def test_a_streams_token_answer_is_at_most_two_seconds_old_and_expires_on_time(
    operator_token_user,
) -> None:
    """A stream's connect takes what the process read of its token in the last
    RECENT_SECONDS (a crowd with one token asks the database once): a token revoked, or its
    user deactivated, since is refused once that answer is so old; an expiry at once."""
    import time as wall
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from realtime.access.auth import RECENT_SECONDS
    from realtime.models import ApiToken

    def connect(token: str) -> int:
        response = Client().get("/events/violations/", headers={"Authorization": f"Bearer {token}"})
        response.close()  # a stream: not read here
        return response.status_code

    revoked = ApiToken.issue(operator_token_user)
    leaver = get_user_model().objects.create_user("leaver", password="a-long-password-1")
    deactivated = ApiToken.issue(leaver)
    expiring = ApiToken.issue(operator_token_user, timezone.now() + timedelta(seconds=1))
    assert [connect(t) for t in (revoked, deactivated, expiring)] == [200, 200, 200]
    ApiToken.objects.filter(key_hash=ApiToken.hash_key(revoked)).delete()  # as --revoke does
    get_user_model().objects.filter(pk=leaver.pk).update(is_active=False)
    wall.sleep(1.1)
    assert connect(expiring) == 401, "expired: refused at once"
    wall.sleep(RECENT_SECONDS)
    assert connect(revoked) == 401
    assert connect(deactivated) == 401


async def test_a_token_whose_stream_was_closed_for_it_is_refused_at_once(
    operator_token_user,
) -> None:
    """The streams' check that finds a token revoked makes the process forget its answer."""
    from django.test import Client

    from realtime.access.auth import recent_tokens
    from realtime.access.open_streams import Holder, open_streams
    from realtime.models import ApiToken

    token = await database_sync_to_async(ApiToken.issue)(operator_token_user)
    user, token_id = await database_sync_to_async(recent_tokens.holder)(token)
    assert token_id is not None
    closed: list[bool] = []
    handle = open_streams.open(Holder(user.pk, token_id), closed.append, "sse")
    try:
        await database_sync_to_async(ApiToken.objects.filter(pk=token_id).delete)()
        await open_streams.check()
        assert closed == [False]
    finally:
        open_streams.close(handle)
    assert recent_tokens.known(token) is None, "forgotten: the next connect asks the database"
    response = await database_sync_to_async(Client().get)(
        "/events/violations/", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


@pytest.fixture
def operator_token_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("watcher", password="a-long-password-1")


@pytest.mark.e2e
async def test_no_token_reaches_a_log_line_or_a_redirect(database_url, tmp_path) -> None:
    """Daphne started as docs/how-to/deploy.md says: its access log prints every path it serves."""
    import httpx

    from tests.helpers import Stack, manage, websocket

    stack = Stack.start("memory", database_url, None, tmp_path)
    try:
        token = manage(database_url, "shell", "-c", ISSUE_TOKEN).strip().splitlines()[-1]
        async with httpx.AsyncClient(base_url=stack.http) as client:
            for path in ["/", "/admin/", "/nowhere", "/rows/?before=x", "/metrics"]:
                joiner = "&" if "?" in path else "?"
                response = await client.get(f"{path}{joiner}token={token}")
                assert token not in response.headers.get("location", "")
            async with websocket(f"{stack.ws}/ws/violations/?token={token}"):
                pass
            with pytest.raises(InvalidStatus):  # refused: in the access log all the same
                async with websocket(f"{stack.ws}/ws/violations/?token={token}&lastEventId=x"):
                    pass
        await asyncio.sleep(0.5)
        log = stack.server.log()
        assert "?token=[redacted]" in log, "the access log is on"
        assert token not in log
    finally:
        stack.stop()


@pytest.mark.e2e
async def test_revoking_a_token_or_deactivating_its_user_closes_its_streams(
    database_url, tmp_path
) -> None:
    from tests.helpers import Stack, manage, sse, websocket

    stack = Stack.start("memory", database_url, None, tmp_path)
    try:
        token = manage(database_url, "shell", "-c", ISSUE_TOKEN).strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
            sse(f"{stack.http}/events/violations/", auth) as events,
        ):
            manage(database_url, "issue_token", f"--revoke={token[:8]}")
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(ws.wait_closed(), 12)
            assert ws.close_code == 4401
            with pytest.raises(EOFError):
                while True:  # stream-error, then the end
                    await events.next_event(timeout=12)
            assert asyncio.get_running_loop().time() - started < 10.5

        token = (
            manage(database_url, "shell", "-c", ISSUE_TOKEN.replace("neighbour", "leaver"))
            .strip()
            .splitlines()[-1]
        )
        async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
            manage(
                database_url,
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model;"
                " get_user_model().objects.filter(username='leaver').update(is_active=False)",
            )
            await asyncio.wait_for(ws.wait_closed(), 12)
            assert ws.close_code == 4401
    finally:
        stack.stop()


@pytest.mark.e2e
async def test_a_user_may_hold_so_many_streams_and_is_refused_cleanly_beyond(
    database_url, tmp_path
) -> None:
    import httpx

    from tests.helpers import Stack, manage, sse, websocket

    stack = Stack.start("memory", database_url, None, tmp_path, REALTIME_MAX_STREAMS_PER_USER="2")
    try:
        token = manage(database_url, "shell", "-c", ISSUE_TOKEN.replace("neighbour", "greedy"))
        token = token.strip().splitlines()[-1]
        other = manage(database_url, "shell", "-c", ISSUE_TOKEN.replace("neighbour", "modest"))
        other = other.strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            websocket(f"{stack.ws}/ws/violations/?token={token}"),
            sse(f"{stack.http}/events/violations/", auth),
        ):
            with pytest.raises(InvalidStatus) as refused:
                async with websocket(f"{stack.ws}/ws/violations/?token={token}"):
                    pass
            assert refused.value.response.status_code == 403
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{stack.http}/events/violations/", headers=auth)
                assert response.status_code == 429 and "too many streams" in response.text
                metrics = (await client.get(f"{stack.http}/metrics", headers=auth)).text
            assert (
                'realtime_streams_refused_total{reason="per_user_cap",transport="websocket"} 1.0'
                in metrics
            )
            assert (
                'realtime_streams_refused_total{reason="per_user_cap",transport="sse"} 1.0'
                in metrics
            )
            async with websocket(f"{stack.ws}/ws/violations/?token={other}"):
                pass  # another user is not counted against this one
        async with websocket(f"{stack.ws}/ws/violations/?token={token}"):
            pass  # closed ones no longer count
    finally:
        stack.stop()


# --- login throttling -----------------------------------------------------------------------


@pytest.mark.parametrize("login", ["/accounts/login/", "/admin/login/"])
def test_wrong_passwords_lock_out_that_user_from_that_address_only(login) -> None:
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from realtime.models import ApiToken

    users = get_user_model()
    users.objects.create_superuser("guessed", "g@example.com", "the-right-password-1")
    users.objects.create_superuser("colleague", "c@example.com", "another-password-22")
    desk = Client(REMOTE_ADDR="10.0.0.7")

    def attempt(client: Client, username: str, password: str) -> int:
        return client.post(login, {"username": username, "password": password}).status_code

    # The fifth wrong password is the last: it is answered with the lockout already.
    assert [attempt(desk, "guessed", f"wrong-{n}") for n in range(5)] == [200] * 4 + [429]
    locked = desk.post(login, {"username": "guessed", "password": "the-right-password-1"})
    assert locked.status_code == 429, "even the right password, now"
    assert "Too many failed logins" in locked.content.decode()
    # The control room shares an address: a colleague logs in from it as before, and the
    # locked-out operator from another desk.
    assert attempt(desk, "colleague", "another-password-22") == 302
    assert attempt(Client(REMOTE_ADDR="10.0.0.8"), "guessed", "the-right-password-1") == 302
    call_command("axes_reset_username", "guessed", stdout=io.StringIO())
    assert attempt(desk, "guessed", "the-right-password-1") == 302, "unlocked"
    assert ApiToken.objects.count() == 0


# --- headers and origins --------------------------------------------------------------------


def test_pages_carry_a_strict_content_security_policy(operator_token_user) -> None:
    from django.test import Client

    client = Client()
    client.force_login(operator_token_user)
    for path in ["/", "/legacy/", "/accounts/login/"]:
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["default-src"] == "'self'"
        assert directives["script-src"].startswith("'self'") and "unsafe" not in policy, path
        assert directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    legacy = client.get("/legacy/")
    nonce = re.search(r"<script nonce=\"([^\"]+)\">", legacy.content.decode())
    assert nonce is not None, "the tutorial's inline client runs by its nonce"
    assert f"'nonce-{nonce.group(1)}'" in legacy["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("origin", "host", "accepted"),
    [
        (b"http://127.0.0.1:8000", b"127.0.0.1:8000", True),  # the page's own origin
        (b"http://127.0.0.1:9999", b"127.0.0.1:8000", False),  # another port, same host
        (b"https://127.0.0.1:8000", b"127.0.0.1:8000", False),  # another scheme
        (b"http://localhost:8000", b"127.0.0.1:8000", False),  # another host, though allowed
        (b"http://evil.example", b"evil.example", False),  # a host not in ALLOWED_HOSTS
        (b"null", b"127.0.0.1:8000", False),
    ],
)
async def test_a_websocket_is_opened_only_from_the_pages_own_origin(
    operator_token_user, origin, host, accepted
) -> None:
    from channels.testing import WebsocketCommunicator

    from config.asgi import application
    from realtime.models import ApiToken

    token = await database_sync_to_async(ApiToken.issue)(operator_token_user)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/violations/?token={token}",
        headers=[(b"origin", origin), (b"host", host)],
    )
    connected, _ = await communicator.connect()
    assert connected is accepted
    await communicator.disconnect()


# --- hostile input --------------------------------------------------------------------------


def test_unicode_digits_are_a_400_not_a_500(operator_token_user) -> None:
    from django.test import Client

    client = Client(raise_request_exception=False)
    client.force_login(operator_token_user)
    for path in [
        "/?camera=²",
        "/?camera=\u0661",
        "/counters/?camera=²",
        "/events/violations/rows/?camera=²",
        "/events/violations/?lastEventId=²",
        "/events/violations/?lastEventId=\u0661\u0662",
    ]:
        assert client.get(path).status_code == 400, path


# As browsers send them: percent-encoded UTF-8 ("²"; Arabic-Indic "12").
@pytest.mark.parametrize(
    "path", ["/ws/violations/?lastEventId=%C2%B2", "/ws/violations/?lastEventId=%D9%A1%D9%A2"]
)
async def test_a_websocket_resume_point_of_unicode_digits_is_refused_cleanly(
    operator_token_user, path, caplog
) -> None:
    from channels.testing import WebsocketCommunicator

    from config.asgi import application
    from realtime.models import ApiToken

    token = await database_sync_to_async(ApiToken.issue)(operator_token_user)
    communicator = WebsocketCommunicator(application, f"{path}&token={token}")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/ws/", "/ws/violations/extra/", "/other"])
async def test_an_unknown_websocket_path_is_refused_cleanly(path, caplog) -> None:
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback"


@pytest.mark.parametrize(
    "image",
    [
        "/\\evil.example/x.jpg",
        "/\tevil.example/x.jpg",
        "/\t/evil.example/x.jpg",
        "/\n/evil.example/x.jpg",
        "//evil.example/x.jpg",
        "\\\\evil.example\\x.jpg",
        " //evil.example/x.jpg",
        "https://evil.example/x.jpg",
        "javascript:alert(1)",
        "/media/%2F%2Fevil.example",
    ],
)
def test_links_from_row_data_stay_on_the_products_origin(image) -> None:
    from urllib.parse import urljoin

    from realtime.console.rows import ViolationRow

    row = ViolationRow.from_data(
        kinds.registry().by_slug["ppe"], {"id": 1, "violation_image": image}
    )
    href = row.image_href
    if href is not None:
        # What a browser makes of it (it drops tabs and new lines, and reads \\ as /).
        cleaned = href.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
        assert urljoin("https://violations.example/", cleaned).startswith(
            "https://violations.example/"
        ), href


def test_plain_paths_are_still_links() -> None:
    from realtime.console.rows import ViolationRow

    row = ViolationRow.from_data(
        kinds.registry().by_slug["ppe"], {"id": 1, "violation_image": "/media/cam07/0001.jpg"}
    )
    assert row.image_href == "/media/cam07/0001.jpg"


async def test_a_statement_notice_with_a_unicode_transaction_id_stops_nothing(
    db_url, pg, marker
) -> None:
    listener, got = listener_under_test(db_url)
    async with running(listener) as task:
        pg.execute(
            "SELECT pg_notify('realtime_changed_v1', %s)",
            [
                json.dumps(
                    {
                        "table": "violation_ppedetections",
                        "op": "INSERT",
                        "first_id": 1,
                        "last_id": 2,
                        "rows": 2,
                        "xid": "\u00b2",
                    }
                )
            ],
        )
        insert_violation(pg, image=marker)
        await got.wait_for_images({marker})
        assert not task.done()
    assert listener.reconnects == 0, "it did not fall over"
