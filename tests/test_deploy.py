"""The production recipe (deploy/run.sh): supervisord, two Daphne, two listen_notify."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect

from tests.helpers import (
    Process,
    free_port,
    insert_violation,
    next_frame,
    server_env,
    sse,
    wait_for_http,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def recipe(database_url: str, tmp_path: Path) -> Iterator[tuple[Process, str, Path]]:
    from django.conf import settings

    port = free_port()
    env = server_env(
        database_url,
        settings.TEST_REDIS_URL,
        REALTIME_BIND=f"127.0.0.1:{port}",
        REALTIME_RUN_DIR=str(tmp_path / "run"),
        REALTIME_VENV=str(Path(sys.executable).parent.parent),
    )
    supervisor = Process(["bash", "deploy/run.sh"], env, tmp_path / "supervisord.out").start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/accounts/login/", timeout=30)
        yield supervisor, f"127.0.0.1:{port}", tmp_path / "run"
    finally:
        supervisor.stop(signal.SIGTERM, timeout=30)
        assert not [p for p in psutil.process_iter(["cmdline"]) if _ours(p, tmp_path)], (
            "supervisord left processes behind"
        )


def _ours(process: Any, tmp_path: Path) -> bool:
    try:
        return str(tmp_path) in " ".join(process.environ().get(k, "") for k in ["REALTIME_RUN_DIR"])
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def daphne_pids(run_dir: Path) -> list[int]:
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if "daphne" in cmdline and process.environ().get("REALTIME_RUN_DIR") == str(run_dir):
                pids.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def server_pid_of(local_port: int, pids: list[int]) -> int | None:
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == local_port:
                return pid
    return None


async def test_rows_reach_clients_of_both_daphne_processes_and_a_killed_listener_loses_nothing(
    recipe, pg, token
) -> None:
    supervisor, bind, run_dir = recipe
    pids = daphne_pids(run_dir)
    assert len(pids) == 2, pids

    sockets = []
    served_by: set[int] = set()
    try:
        # The kernel hands each connection to whichever process accepts first: usually
        # both within a few, but a busy machine can send a run of them to one (16 in a
        # row, once, while a benchmark ran beside the tests).
        for _ in range(64):
            ws = await connect(f"ws://{bind}/ws/violations/?token={token}", open_timeout=10)
            sockets.append(ws)
            served_by.add(server_pid_of(ws.local_address[1], pids) or 0)
            if len(sockets) >= 16 and served_by == set(pids):
                break
        assert served_by == set(pids), "clients are spread over both processes"

        first = insert_violation(pg, image="/media/deployed.jpg")
        for ws in sockets:
            # A listener that has just started may first forward, from the log, rows of
            # earlier tests that no listener had forwarded: they come before this one.
            while (await next_frame(ws, 15))["data"]["id"] != first:
                pass

        # Kill the listener that forwards; its standby takes over, supervisord restarts it.
        holder = pg.execute("SELECT holder FROM realtime_listener_state").fetchone()[0]
        os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)
        ids = {insert_violation(pg, image=f"/media/after-kill-{n}.jpg") for n in range(5)}
        for ws in sockets:
            got: set[int] = set()
            while not ids <= got:
                got.add((await next_frame(ws, 20))["data"]["id"])
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    assert supervisor.popen is not None and supervisor.popen.poll() is None


# --- two machines (issue #27) ---------------------------------------------------------------

PUSHPIN_KEY = "two-machines-pushpin-key"


def start_machine(
    database_url: str, tmp_path: Path, name: str, offset: int, grip_urls: str
) -> tuple[Process, str, Path]:
    """One machine of the recipe: deploy/run.sh with its own Pushpin in front."""
    from django.conf import settings

    port, pushpin_port = free_port(), free_port()
    env = server_env(
        database_url,
        settings.TEST_REDIS_URL,
        REALTIME_BIND=f"127.0.0.1:{port}",
        REALTIME_RUN_DIR=str(tmp_path / name),
        REALTIME_VENV=str(Path(sys.executable).parent.parent),
        DAPHNE_PROCESSES="1",
        SUPERVISE_PUSHPIN="true",
        PUSHPIN_PORT=f"127.0.0.1:{pushpin_port}",
        PUSHPIN_PORT_OFFSET=str(offset),
        PUSHPIN_KEY=PUSHPIN_KEY,
        GRIP_URL=grip_urls,
    )
    supervisor = Process(["bash", "deploy/run.sh"], env, tmp_path / f"{name}.out").start()
    return supervisor, f"http://127.0.0.1:{pushpin_port}", tmp_path / name


def kill_machine(run_dir: Path) -> None:
    """Every process of a machine at once, as a power cut would."""
    for process in psutil.process_iter():
        try:
            if process.environ().get("REALTIME_RUN_DIR") == str(run_dir):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


@pytest.fixture
def two_machines(database_url: str, tmp_path: Path, token: str) -> Iterator[list[tuple[str, Path]]]:
    from tests.test_pushpin import free_offsets, wait_for_held_streams

    assert shutil.which("pushpin"), "Debian's pushpin package is missing (.ci/run installs it)"
    offsets = free_offsets(2)
    grip_urls = " ".join(
        f"http://127.0.0.1:{5561 + offset}?iss=pushpin&key={PUSHPIN_KEY}" for offset in offsets
    )
    machines = [
        start_machine(database_url, tmp_path, f"machine{n}", offset, grip_urls)
        for n, offset in enumerate(offsets)
    ]
    try:
        for _, base, _ in machines:
            wait_for_held_streams(base, token, timeout=60)
        yield [(base, run_dir) for _, base, run_dir in machines]
    finally:
        for supervisor, _, run_dir in machines:
            supervisor.stop(signal.SIGTERM, timeout=30)
            kill_machine(run_dir)


async def test_two_machines_each_client_gets_every_row_once_and_a_dead_machines_miss_nothing(
    two_machines, pg, token
) -> None:
    """Issue #27: two instances of the recipe, each with its own Pushpin, sharing Redis and
    PostgreSQL. The active listener (on either) publishes each change to both Pushpins; a
    machine killed outright, its client comes back through the other with its last id."""
    (base_a, _), (base_b, run_dir_b) = two_machines
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        sse(f"{base_a}/events/violations/", auth) as on_a,
        sse(f"{base_b}/events/violations/", auth) as on_b,
    ):
        rows = [insert_violation(pg, image=f"/media/two-machines-{n}.jpg") for n in range(3)]
        for events in (on_a, on_b):
            # Each row once, in order: a repeat would come before the next row.
            assert [(await events.next_change(timeout=20))["data"]["id"] for _ in rows] == rows
        last_on_b = on_b.last_id
        kill_machine(run_dir_b)
        missed = [insert_violation(pg, image=f"/media/two-machines-dead-{n}.jpg") for n in range(3)]
        assert [(await on_a.next_change(timeout=30))["data"]["id"] for _ in missed] == missed
    assert last_on_b
    # The balancer sends machine B's client to A; it resumes from its last id.
    async with sse(f"{base_a}/events/violations/", {**auth, "Last-Event-ID": last_on_b}) as back:
        assert [(await back.next_change(timeout=20))["data"]["id"] for _ in missed] == missed
        live = insert_violation(pg, image="/media/two-machines-live.jpg")
        assert (await back.next_change(timeout=20))["data"]["id"] == live
