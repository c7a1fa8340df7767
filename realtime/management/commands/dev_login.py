from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "For `make run`: create a superuser for local use where none of that name exists, "
        "and print its login (the password is kept in .data/dev-login.txt). An existing "
        "user is never changed: the database may be someone else's (DATABASE_URL)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        login_file = Path(settings.BASE_DIR) / ".data" / "dev-login.txt"
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username, f"{username}@localhost", password)
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.write_text(password + "\n")
            login_file.chmod(0o600)
            self.stdout.write(f"Log in as  user: {username}  password: {password}")
            return
        saved = login_file.read_text().strip() if login_file.exists() else ""
        if saved and user.check_password(saved):
            self.stdout.write(f"Log in as  user: {username}  password: {saved}")
            return
        # Someone's user (another database, or a password changed since): theirs to keep.
        self.stdout.write(
            f"User {username} exists already: its password was not changed. Log in with it, "
            f"or set one: .venv/bin/python manage.py changepassword {username}"
        )
