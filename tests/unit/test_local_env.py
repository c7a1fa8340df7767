"""The checkout's `.env`: what `make run` writes, a command in a new terminal reads
(tests/test_local_env.py runs the README's token command with it, against a database)."""

from __future__ import annotations

import stat
from pathlib import Path

from config import local_env
from tests.helpers import ROOT
from tests.new_terminal import in_a_new_terminal, make_run_writes


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
