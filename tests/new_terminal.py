"""A command as a new terminal runs it after `make run`: from an environment that holds
nothing but PATH and the `.env`'s place (a file of the test's own, not the developer's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

NEW_TERMINAL = {"PATH": "/usr/bin:/bin"}


def make_run_writes(env_file: Path, **given: str) -> str:
    """What `make run` runs first (its `local-env` step), given these variables."""
    out = subprocess.run(
        [sys.executable, "-m", "config.local_env"],
        cwd=ROOT,
        env={**NEW_TERMINAL, "REALTIME_ENV_FILE": str(env_file), **given},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def in_a_new_terminal(env_file: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**NEW_TERMINAL, "REALTIME_ENV_FILE": str(env_file), **env},
        capture_output=True,
        text=True,
    )
