"""`make test-unit` passes with PostgreSQL and Redis out of reach; the whole suite, `make
test`'s run, fails without them (exit status 3, naming each), never skips."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def unreachable() -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL on ports bound but never listened on: refused at once."""
    closed = [socket.socket(), socket.socket()]
    for sock in closed:
        sock.bind(("127.0.0.1", 0))
    postgres, redis = (sock.getsockname()[1] for sock in closed)
    yield {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres}/nowhere",
        "REDIS_URL": f"redis://127.0.0.1:{redis}/0",
    }
    for sock in closed:
        sock.close()


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=240
    )


@pytest.mark.timeout(300)
def test_make_test_unit_passes_without_postgresql_or_redis(
    unreachable: dict[str, str], tmp_path: Path
) -> None:
    # -o: the checkout's .venv as it is, never reinstalled by a test.
    out = run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "test-unit",
            f"PYTEST_ARGS=-p no:cacheprovider --basetemp={tmp_path / 'unit'}",
        ],
        unreachable,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, summary


def test_the_suite_fails_naming_each_service_out_of_reach(
    unreachable: dict[str, str], tmp_path: Path
) -> None:
    out = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={tmp_path}"],
        unreachable,
    )
    assert out.returncode == 3, out.stdout[-3000:] + out.stderr[-3000:]
    said = out.stdout + out.stderr
    assert "Tests need real services; unreachable:" in said
    assert "PostgreSQL at dbname=nowhere user=postgres host=127.0.0.1" in said
    assert f"Redis at {unreachable['REDIS_URL']}" in said
    assert " passed" not in said and "skipped" not in said
