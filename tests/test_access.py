"""Closed by default: sessions or tokens for pages, streams and sockets; origins checked."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import redirect_stderr

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator():
    return get_user_model().objects.create_user("operator", password="a-long-password-1")


@pytest.fixture
def token(operator) -> str:
    out = io.StringIO()
    with redirect_stderr(io.StringIO()):
        call_command("issue_token", "operator", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_issue_token_prints_the_token_alone_on_its_last_line(token) -> None:
    assert len(token) >= 40 and " " not in token


def test_issue_token_refuses_an_unknown_user() -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="nobody"):
        call_command("issue_token", "nobody")


def test_login_form_then_page(operator) -> None:
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "operator", "password": "a-long-password-1"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_sse_refuses_before_any_stream(headers) -> None:
    response = Client().get("/events/violations/", headers=headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert not response.streaming


def test_sse_with_a_wrong_token_is_refused_even_with_a_session(operator) -> None:
    client = Client()
    client.force_login(operator)
    response = client.get("/events/violations/?token=wrong")
    assert response.status_code == 401


@pytest.mark.parametrize("last_event_id", ["abc", "violations:x", "other:5", "-1", "9" * 40])
def test_sse_refuses_garbage_resume_points(token, last_event_id) -> None:
    response = Client().get(
        "/events/violations/",
        headers={"Authorization": f"Bearer {token}", "Last-Event-ID": last_event_id},
    )
    assert response.status_code == 400


def ws(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=headers or [])


async def test_websocket_without_credentials_is_refused() -> None:
    communicator = ws("/ws/violations/")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_websocket_with_a_wrong_token_is_refused() -> None:
    communicator = ws("/ws/violations/?token=wrong")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_script_without_origin_connects_with_a_token(token) -> None:
    for path, headers in [
        (f"/ws/violations/?token={token}", []),
        ("/ws/table/", [(b"authorization", f"Bearer {token}".encode())]),
    ]:
        communicator = ws(path, headers)
        connected, _ = await communicator.connect()
        assert connected, path
        await communicator.disconnect()


async def test_foreign_origin_is_refused_even_with_a_token(token) -> None:
    communicator = ws(f"/ws/violations/?token={token}", [(b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_same_site_origin_is_accepted(token) -> None:
    communicator = ws(
        f"/ws/violations/?token={token}",
        [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize(
    "query", ["kind=cars", "camera=abc", "layout=fancy", "camera=" + "1" * 5000]
)
def test_rows_stream_refuses_unknown_filters(token, query) -> None:
    response = Client().get(
        f"/events/violations/rows/?{query}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400


def test_bad_filters_on_pages_are_a_400(operator) -> None:
    client = Client()
    client.force_login(operator)
    assert client.get("/?kind=cars").status_code == 400
    for before in ["x", "2025-07-28,15:00:00,cars,1", "2025-13-45,15:00:00,ppe,1", "²,1,ppe,1"]:
        assert client.get("/rows/", {"before": before}).status_code == 400, before
    assert client.get("/rows/?before=2025-07-28,15:00:00.5,ppe,1").status_code == 200
    assert client.get("/rows/?before=-infinity,00:00:00,ppe,1").status_code == 200
    assert client.get("/rows/").status_code == 200, "without a cursor: the first page"


def test_an_expired_session_is_refused(operator) -> None:
    client = Client()
    client.force_login(operator)
    assert client.get("/events/violations/?lastEventId=0").status_code != 401
    session = client.session
    session.set_expiry(-1)
    session.save()
    assert client.get("/events/violations/").status_code == 401
    assert client.get("/").status_code == 302


def test_very_long_query_strings_get_a_4xx(token) -> None:
    long = "x" * 100_000
    auth = {"Authorization": f"Bearer {token}"}
    for path in [
        f"/events/violations/?lastEventId={long}",
        f"/events/violations/rows/?kind={long}",
        f"/events/violations/rows/?camera={'9' * 100_000}",
    ]:
        assert 400 <= Client().get(path, headers=auth).status_code < 500, path[:60]
    assert Client().get(f"/events/violations/?token={long}").status_code == 401


# --- finding 6 of issue #22: bad input that was a 500 -------------------------------------


@pytest.mark.parametrize(
    "day", ["00000-00-00", "12345-99-99", "99999-02-30", "10001-02-29", "2025-02-29", "0000-01-01"]
)
def test_a_cursor_of_a_date_that_does_not_exist_is_a_400(operator, day) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(operator)
    for path in ("/rows/", "/history/"):
        response = client.get(path, {"before": f"{day},00:00:00,human,1"})
        assert response.status_code == 400, (path, day)
        assert "before must be a cursor" in response.content.decode()


def test_a_cursor_after_the_year_9999_pages_on(operator, pg) -> None:
    # PostgreSQL's dates go far past Python's: a detector may write 10000-03-01.
    for day in ("10000-03-01", "2025-01-01"):
        pg.execute(
            "INSERT INTO violation_humandetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " VALUES (1, %s, '08:00', %s)",
            [day, f"/media/{day}.jpg"],
        )
    client = Client()
    client.force_login(operator)
    for path in ("/rows/", "/history/"):
        html = client.get(path, {"before": "10000-02-29,12:00:00,human,1"}).content.decode()
        assert "/media/2025-01-01.jpg" in html and "/media/10000-03-01.jpg" not in html, path


def unsigned_es_meta() -> str:
    """What django-eventstream signs for Pushpin, with the signature left off (alg none)."""
    claims = {"iss": "es", "exp": int(time.time()) + 3600, "channels": ["violations"], "user": "1"}
    return jwt.encode(claims, key="", algorithm="none")


PUSHPIN_PARAMETERS = [
    {"recover": "true"},
    {"es-meta": "abc"},
    {"es-meta": "alg-none"},  # unsigned_es_meta(), made per test
    {"es-meta": "no-exp"},  # signed with the server's key, without an expiry
    {"es-meta": "expired"},  # signed with the server's key, an hour old
]


def pushpin_query(parameters: dict[str, str]) -> dict[str, str]:
    made = {
        "alg-none": unsigned_es_meta(),
        "no-exp": jwt.encode(
            {"iss": "es", "channels": ["violations"], "user": "1"},
            settings.SECRET_KEY.encode(),
            algorithm="HS256",
        ),
        "expired": jwt.encode(
            {"iss": "es", "exp": int(time.time()) - 1, "channels": ["violations"], "user": "1"},
            settings.SECRET_KEY.encode(),
            algorithm="HS256",
        ),
    }
    return {name: made.get(value, value) for name, value in parameters.items()}


@pytest.mark.parametrize("path", ["/events/violations/", "/events/violations/rows/"])
@pytest.mark.parametrize("parameters", PUSHPIN_PARAMETERS)
def test_pushpins_parameters_from_a_client_are_a_400(token, path, parameters, caplog) -> None:
    response = Client(raise_request_exception=False).get(
        path, pushpin_query(parameters), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400, response.content
    assert not response.streaming
    assert "Pushpin" in response.json()["error"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback"


GRIP_KEY = "grip-test-key-0123456789abcdefghijklmn"  # 32 bytes or more, as PyJWT wants


@pytest.fixture
def behind_grip() -> Iterator[dict[str, str]]:
    """django-grip's middleware as GRIP_URL sets it up, and the header by which Pushpin
    proves a request came through it (a JWT signed with the shared key)."""
    middleware = [*settings.MIDDLEWARE]
    middleware.insert(1, "django_grip.GripMiddleware")
    grip_url = f"http://127.0.0.1:1?iss=pushpin&key={GRIP_KEY}"
    signature = jwt.encode({"iss": "pushpin", "exp": int(time.time()) + 600}, GRIP_KEY)
    with override_settings(MIDDLEWARE=middleware, GRIP_URL=grip_url):
        yield {"Grip-Sig": signature}


@pytest.mark.parametrize("path", ["/events/violations/", "/events/violations/rows/"])
@pytest.mark.parametrize("parameters", PUSHPIN_PARAMETERS[1:])
def test_an_es_meta_that_does_not_verify_is_a_400_behind_pushpin_too(
    token, behind_grip, path, parameters, caplog
) -> None:
    response = Client(raise_request_exception=False).get(
        path,
        pushpin_query(parameters),
        headers={"Authorization": f"Bearer {token}", **behind_grip},
    )
    assert response.status_code == 400, response.content
    assert "es-meta" in response.json()["error"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback"
