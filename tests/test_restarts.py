"""Restarts of Redis and PostgreSQL under connected clients: nothing committed is lost.

Its own module: the servers here need the advisory lock, which a module-scoped stack
elsewhere would hold.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import Process, Stack, free_port, insert_violation, manage, sse, websocket
from tests.test_faults import collect_images

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def redis_server(port: int, log: Path) -> Process:
    return Process(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        {},
        log,
    )


async def test_redis_restart_keeps_clients_and_loses_nothing(
    database_url, pg, token, tmp_path
) -> None:
    port = free_port()
    redis = redis_server(port, tmp_path / "redis.log").start()
    redis.wait_for_log("Ready to accept connections")
    stack = Stack.start("redis", database_url, f"redis://127.0.0.1:{port}/0", tmp_path)
    try:
        async with (
            websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
            sse(f"{stack.http}/events/violations/", {"Authorization": f"Bearer {token}"}) as ev,
        ):
            insert_violation(pg, image="/media/before-redis-restart.jpg")
            await collect_images(ws, {"/media/before-redis-restart.jpg"})
            redis.stop(signal.SIGTERM)
            during = {f"/media/redis-down-{n}.jpg" for n in range(3)}
            for image in sorted(during):
                insert_violation(pg, image=image)
            mark = len(redis.log())
            redis = redis_server(port, tmp_path / "redis.log").start()
            redis.wait_for_log("Ready to accept connections", after=mark)
            after = {f"/media/redis-back-{n}.jpg" for n in range(3)}
            await asyncio.sleep(1)
            for image in sorted(after):
                insert_violation(pg, image=image)
            seen = await collect_images(ws, during | after, timeout=60)
            assert {i: n for i, n in seen.items() if n > 1} == {}
            seen_sse: set[str] = set()
            while not during | after <= seen_sse:
                seen_sse.add((await ev.next_change(timeout=60))["data"]["violation_image"])
    finally:
        stack.stop()
        redis.kill()


@pytest.fixture
def own_postgres(tmp_path_factory: Any) -> Iterator[tuple[Any, str]]:
    import pgserver

    pgdata = tmp_path_factory.mktemp("pg") / "data"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
    server.psql("CREATE DATABASE violations;")
    url = server.get_uri("violations")
    manage(url, "migrate", "--noinput", "-v0")
    try:
        yield server, url
    finally:
        server.cleanup()


async def test_postgres_restart_keeps_clients_and_loses_nothing(own_postgres, tmp_path) -> None:
    import pgserver

    server, url = own_postgres
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined) VALUES"
            " ('!', false, 'pg-restart', '', '', '', false, true, now()) RETURNING id"
        )
    token = _issue_token(url, "pg-restart")
    stack = Stack.start("memory", url, None, tmp_path)
    try:
        async with (
            websocket(f"{stack.ws}/ws/violations/?token={token}") as ws,
            sse(f"{stack.http}/events/violations/", {"Authorization": f"Bearer {token}"}) as ev,
        ):
            with psycopg.connect(url, autocommit=True) as writer:
                insert_violation(writer, image="/media/before-pg-restart.jpg")
            await collect_images(ws, {"/media/before-pg-restart.jpg"})
            pgserver.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user
            )
            after = {f"/media/pg-back-{n}.jpg" for n in range(3)}
            with psycopg.connect(url, autocommit=True) as writer:
                for image in sorted(after):
                    insert_violation(writer, image=image)
            seen = await collect_images(ws, after, timeout=60)
            assert {i: n for i, n in seen.items() if n > 1} == {}
            seen_sse: set[str] = set()
            while not after <= seen_sse:
                seen_sse.add((await ev.next_change(timeout=60))["data"]["violation_image"])
        assert "listener connection lost" in stack.server.log()
    finally:
        stack.stop()


def _issue_token(url: str, username: str) -> str:
    return manage(url, "issue_token", username).strip().splitlines()[-1]
