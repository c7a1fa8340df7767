"""The checkout's `.env`: what `make run` writes, a command in a new terminal reads (the
file itself in tests/unit/test_local_env.py).

The README's quick start says `.venv/bin/python manage.py issue_token admin` works in
another terminal, with nothing exported: these run it as such a terminal would, from an
environment that holds nothing but PATH and the file's place (a file of the test's own,
not the developer's `.env`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.new_terminal import in_a_new_terminal, make_run_writes


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
