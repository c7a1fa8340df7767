"""`make run`'s login (`manage.py dev_login`): made where it is missing, never changed.

`make run` may be pointed at a database that is not its own embedded one (DATABASE_URL):
a user of that name there belongs to someone, and their password stays theirs.
"""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db

THEIRS = "their-own-password-42"


def dev_login(*args: str) -> str:
    out = io.StringIO()
    call_command("dev_login", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def checkout(settings: Any, tmp_path: Path) -> Path:
    """A checkout of its own: the login file goes to its .data/, not to the real one."""
    settings.BASE_DIR = tmp_path
    return tmp_path / ".data" / "dev-login.txt"


@pytest.mark.parametrize("saved", [None, "a-password-make-run-saved-before"])
def test_an_existing_users_password_is_never_changed(checkout: Path, saved: str | None) -> None:
    get_user_model().objects.create_user("admin", password=THEIRS)
    if saved is not None:
        checkout.parent.mkdir(parents=True)
        checkout.write_text(saved + "\n")

    printed = dev_login()

    user = get_user_model().objects.get(username="admin")
    assert user.check_password(THEIRS), "dev_login changed the password of an existing user"
    assert "exists" in printed and "not changed" in printed, printed
    assert THEIRS not in printed
    if saved is not None:
        assert saved not in printed  # a password that no longer opens anything
        assert checkout.read_text() == saved + "\n"
    else:
        assert not checkout.exists()


def test_a_missing_login_is_made_once_and_its_password_kept(checkout: Path) -> None:
    printed = dev_login()

    user = get_user_model().objects.get(username="admin")
    password = checkout.read_text().strip()
    assert user.is_superuser and user.check_password(password)
    assert f"password: {password}" in printed
    assert stat.S_IMODE(checkout.stat().st_mode) == 0o600
    # make run again: the same login, said again, nothing changed.
    assert f"password: {password}" in dev_login()
    assert get_user_model().objects.get(username="admin").password == user.password
