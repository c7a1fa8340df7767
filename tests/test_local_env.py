"""The checkout's `.env`: what `make run` writes, a command in a new terminal reads.

The README's quick start says `.venv/bin/python manage.py issue_token admin` works in
another terminal, with nothing exported: these run it as such a terminal would, from an
environment that holds nothing but PATH and the file's place (a file of the test's own,
not the developer's `.env`).
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from config import local_env
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


@pytest.mark.django_db(transaction=True)
def test_issue_token_works_in_a_new_terminal_after_make_run(
    tmp_path: Path, database_url: str
) -> None:
    get_user_model().objects.create_user("admin")
    env_file = tmp_path / ".env"
    make_run_writes(env_file, DATABASE_URL=database_url)  # as `DATABASE_URL=... make run`

    out = in_a_new_terminal(env_file, "manage.py", "issue_token", "admin")

    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert len(token) >= 32 and " " not in token


def test_without_the_file_the_same_command_refuses_to_start(tmp_path: Path) -> None:
    # What the issue saw before `make run` wrote a .env: the settings want a secret key.
    out = in_a_new_terminal(tmp_path / "none.env", "manage.py", "issue_token", "admin")
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY is missing" in out.stderr


def test_make_run_writes_debug_once_and_follows_the_database_it_was_given(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert "DJANGO_DEBUG" in make_run_writes(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it may hold a password
    env_file.write_text(env_file.read_text() + "DJANGO_TIME_ZONE=Europe/Vienna\n")

    make_run_writes(env_file, DATABASE_URL="postgresql://a@db.example/plant")
    make_run_writes(env_file, DATABASE_URL="postgresql://a@db.example/other")
    assert make_run_writes(env_file) == ""  # nothing given: nothing to change

    text = env_file.read_text()
    assert "DJANGO_TIME_ZONE=Europe/Vienna" in text  # what the developer wrote stays
    assert text.count("DATABASE_URL") == 1 and "db.example/other" in text
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


SHOW = (
    "import os; from config import local_env; local_env.load(); print(os.environ['DJANGO_DEBUG'])"
)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    make_run_writes(env_file)
    assert in_a_new_terminal(env_file, "-c", SHOW).stdout.strip() == "1"
    assert in_a_new_terminal(env_file, "-c", SHOW, DJANGO_DEBUG="0").stdout.strip() == "0"


def test_the_file_is_the_checkouts_unless_named_and_none_when_named_empty() -> None:
    assert local_env.env_file({}) == ROOT / ".env"
    assert local_env.env_file({"REALTIME_ENV_FILE": "/etc/violations.env"}) == Path(
        "/etc/violations.env"
    )
    assert local_env.env_file({"REALTIME_ENV_FILE": ""}) is None
