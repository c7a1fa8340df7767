"""The recipe for a shared Redis (docs/how-to/shared-redis.md, issue #22): an ACL user per
deployment, limited to its channel prefix, and TLS. A redis-server of the test's own
(Debian's, which has TLS), the real Daphne and listen_notify through it, and a neighbour
who may use the same server.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import Process, Stack, free_port, insert_violation, manage, next_frame, websocket

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PREFIX = "rt.plant-north."
# As in the README: the commands channels-redis' pub/sub layer and /healthz use, on the
# deployment's channels only; no keys (`resetkeys` is the default).
PUBSUB_ONLY = "-@all +publish +subscribe +unsubscribe +ping"
ACL = f"""\
user default off
user admin on >{{admin}} ~* &* +@all
user violations on >{{ours}} resetchannels &rt.plant-north.* {PUBSUB_ONLY}
user neighbour on >{{theirs}} resetchannels &rt.neighbour.* {PUBSUB_ONLY}
"""


@dataclass
class SharedRedis:
    port: int
    tls_port: int
    ca: Path
    passwords: dict[str, str]

    def url(self, user: str, tls: bool = False) -> str:
        if tls:
            return (
                f"rediss://{user}:{self.passwords[user]}@127.0.0.1:{self.tls_port}/0"
                f"?ssl_ca_certs={self.ca}"
            )
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), socket_timeout=5)


def throwaway_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""

    def openssl(command: str) -> None:
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)

    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=ca")
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem"
        " -days 1 -extfile san.ext"
    )
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: Any) -> Iterator[SharedRedis]:
    folder = tmp_path_factory.mktemp("shared-redis")
    ca, cert, key = throwaway_ca(folder)
    passwords = {user: uuid.uuid4().hex for user in ("admin", "violations", "neighbour")}
    acl = folder / "users.acl"
    acl.write_text(
        ACL.format(
            admin=passwords["admin"], ours=passwords["violations"], theirs=passwords["neighbour"]
        )
    )
    shared = SharedRedis(free_port(), free_port(), ca, passwords)
    config = (
        f"--bind 127.0.0.1 --port {shared.port} --tls-port {shared.tls_port}"
        f" --tls-cert-file {cert} --tls-key-file {key} --tls-ca-cert-file {ca}"
        f" --tls-auth-clients no --aclfile {acl} --appendonly no"
    )
    server = Process(
        ["redis-server", *config.split(), "--save", ""],
        {"PATH": "/usr/bin:/bin"},
        folder / "redis.log",
    ).start()
    try:
        server.wait_for_log("Ready to accept connections")
        yield shared
    finally:
        server.stop()


def operator_token(database_url: str) -> str:
    script = (
        "from django.contrib.auth import get_user_model; from realtime.models import ApiToken;"
        " u = get_user_model().objects.create_superuser('operator'); print(ApiToken.issue(u))"
    )
    return manage(database_url, "shell", "-c", script).strip().splitlines()[-1]


async def a_row_travels(stack: Stack, database_url: str, pg: Any, marker: str) -> None:
    token = operator_token(database_url)
    async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
        insert_violation(pg, image=marker)
        frame = await next_frame(ws)
        assert frame["data"]["violation_image"] == marker
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{stack.http}/healthz")).json()
    assert health["redis"] == {"ok": True}


async def test_with_an_acl_user_per_deployment_the_product_works_and_a_neighbour_sees_nothing(
    shared_redis, database_url, pg, tmp_path, marker
) -> None:
    stack = Stack.start(
        "redis", database_url, shared_redis.url("violations"), tmp_path, REALTIME_BUS_PREFIX=PREFIX
    )
    try:
        await a_row_travels(stack, database_url, pg, marker)
        group = f"{PREFIX}__group__violations"
        admin = shared_redis.client("admin")
        assert group.encode() in admin.pubsub_channels(), "the bus is on this Redis"
        neighbour = shared_redis.client("neighbour")
        for command in (
            ("PUBSUB", "CHANNELS", "*"),
            ("PUBLISH", group, b"anything"),
            ("SUBSCRIBE", group),
            ("PSUBSCRIBE", "rt.*"),
            ("KEYS", "*"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                neighbour.execute_command(*command)
        assert neighbour.publish("rt.neighbour.their-own", b"x") == 0, "on its own channels: yes"
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=shared_redis.port).ping()  # and nobody without a password
        # The product was refused nothing: the ACL grants all it uses.
        denied = [entry for entry in admin.acl_log(1000) if entry["username"] == "violations"]
        assert denied == [], denied
        for process in [stack.server, *stack.listeners]:
            assert shared_redis.passwords["violations"] not in process.log()
    finally:
        stack.stop()


async def test_the_product_works_over_tls_with_the_servers_certificate_checked(
    shared_redis, database_url, pg, tmp_path, marker
) -> None:
    stack = Stack.start(
        "redis",
        database_url,
        shared_redis.url("violations", tls=True),
        tmp_path,
        REALTIME_BUS_PREFIX=PREFIX,
    )
    try:
        await a_row_travels(stack, database_url, pg, marker)
        unchecked = shared_redis.url("violations", tls=True).partition("?")[0]
        with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            redis.Redis.from_url(unchecked, socket_timeout=5).ping()  # not the system's CAs
    finally:
        stack.stop()
