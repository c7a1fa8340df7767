from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.models import ApiToken


class Command(BaseCommand):
    help = (
        "Issue an API token for USERNAME and print it on the last line. Clients send it as "
        "'Authorization: Bearer <token>' or '?token=<token>'. Only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {options['username']!r}.") from exc
        if not user.is_active:
            raise CommandError(f"User {options['username']!r} is inactive.")
        key = ApiToken.issue(user)
        self.stderr.write(f"Token for {options['username']} (shown once, keep it secret):")
        self.stdout.write(key)
