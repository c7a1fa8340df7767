import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "For `make run`: make sure a superuser exists for local use and print its login. "
        "The password is kept in .data/dev-login.txt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        login_file = Path(settings.BASE_DIR) / ".data" / "dev-login.txt"
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        saved = login_file.read_text().strip() if login_file.exists() else ""
        if user is None or not saved or not user.check_password(saved):
            saved = secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_superuser(username, f"{username}@localhost", saved)
            else:
                user.set_password(saved)
                user.save(update_fields=["password"])
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.write_text(saved + "\n")
            login_file.chmod(0o600)
        self.stdout.write(f"Log in as  user: {username}  password: {saved}")
