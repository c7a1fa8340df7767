"""The production recipe (deploy/run.sh): supervisord, two Daphne, two listen_notify."""

from __future__ import annotations

import asyncio
import os
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
