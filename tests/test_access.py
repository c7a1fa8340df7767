"""Closed by default: sessions or tokens for pages, streams and sockets; origins checked."""

from __future__ import annotations

import io
from contextlib import redirect_stderr

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from config.asgi import application
from realtime.auth import token_from_parts

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


@pytest.mark.parametrize(
    ("authorization", "query", "expected"),
    [
        ("Bearer abc", {}, "abc"),
        ("bearer  abc ", {}, "abc"),
        (None, {"token": ["abc"]}, "abc"),
        ("Basic dXNlcg==", {"token": ["abc"]}, ""),
        (None, {}, None),
    ],
)
def test_token_is_read_from_header_or_query(authorization, query, expected) -> None:
    assert token_from_parts(authorization, query) == expected


def test_pages_need_a_login() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Client().get("/accounts/login/").status_code == 200


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


def test_rows_stream_and_pages_need_credentials() -> None:
    assert Client().get("/events/violations/rows/").status_code == 401
    for path in ["/", "/rows/", "/legacy/"]:
        assert Client().get(path).status_code == 302, path


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
