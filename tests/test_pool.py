"""A request the process's database pool has no connection for within its timeout: a 503
with Retry-After (its client tries again), never a 500 and a traceback. In-process, with
the real pool: the test takes every connection it has."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def issue(name: str) -> str:
    from django.contrib.auth import get_user_model

    from realtime.models import ApiToken

    return ApiToken.issue(get_user_model().objects.create_user(name, password="a-long-pass-1"))


def refused_busy(response: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == "5"
    assert b"try again" in response.content
    # Django's line for any 5xx, and nothing more: no traceback.
    assert [r.getMessage() for r in caplog.records] == [
        f"Service Unavailable: {response.request['PATH_INFO']}"
    ]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("path", ["/events/violations/", "/events/violations/rows/", "/counters/"])
def test_a_token_the_pool_cannot_look_up_in_time_gets_a_503(path, caplog) -> None:
    token = issue("crowded")
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.WARNING), exhausted():
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    refused_busy(response, caplog)
    assert token not in caplog.text


def test_a_view_that_gets_no_connection_in_time_is_a_503(client_of, caplog) -> None:
    """The session is read in the view: its query gets no connection."""
    client = client_of("operator-in-a-crowd")
    client.raise_request_exception = False
    with caplog.at_level(logging.WARNING), exhausted():
        response = client.get("/events/violations/")
    refused_busy(response, caplog)


async def test_a_websocket_handshake_the_pool_cannot_serve_is_refused_cleanly(caplog) -> None:
    token = await database_sync_to_async(issue)("crowded-socket")
    communicator = WebsocketCommunicator(application, f"/ws/violations/?token={token}")
    with caplog.at_level(logging.WARNING):
        held = await database_sync_to_async(_take_all)()
        try:
            connected, _ = await communicator.connect()
        finally:
            await database_sync_to_async(_give_back)(held)
    assert not connected
    await communicator.disconnect()
    assert "no database connection within the pool's timeout" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback"


# --- taking the pool's connections ----------------------------------------------------------


@contextmanager
def exhausted() -> Iterator[None]:
    held = _take_all()
    try:
        yield
    finally:
        _give_back(held)


def _take_all() -> tuple[Any, float, list[Any]]:
    """Every connection of the pool, taken (those other threads hold too: a connection an
    async test's own thread keeps); and a pool that waits 0.2 s for one."""
    from django.db import connection
    from psycopg_pool import PoolTimeout

    connection.close()  # this thread's, back to the pool first
    pool = connection.pool  # type: ignore[attr-defined]
    taken = []
    while True:
        try:
            taken.append(pool.getconn(timeout=0.5))
        except PoolTimeout:
            break
    timeout = pool.timeout
    pool.timeout = 0.2
    return pool, timeout, taken


def _give_back(held: tuple[Any, float, list[Any]]) -> None:
    pool, timeout, taken = held
    for connection in taken:
        pool.putconn(connection)
    pool.timeout = timeout
