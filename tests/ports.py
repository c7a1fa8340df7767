"""Ports for the servers the tests start, apart per pytest-xdist worker (no heavy imports:
bench/mqtt.py uses them through tests.mqtt_peers)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator


def xdist_worker() -> tuple[int, int]:
    """This process's pytest-xdist worker (gwN: N) and how many there are; (0, 1) in a run
    without workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return 0, 1
    return int(worker[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def _candidate_ports() -> Iterator[int]:
    worker, workers = xdist_worker()
    while True:
        yield from range(12_000, 20_000)[worker::workers]


_CANDIDATE_PORTS = _candidate_ports()


def free_port() -> int:
    """A port for a server a test starts. Each pytest-xdist worker takes from ports of its
    own, in turn, below Pushpin's offsets (test_pushpin.free_offsets) and the kernel's
    ephemeral range (32768-): a port the kernel chose (bind to 0) could be chosen again,
    for another worker's server or an outgoing connection, before this test's server bound
    it."""
    for _ in range(8_000):
        port = next(_CANDIDATE_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port among this worker's")
