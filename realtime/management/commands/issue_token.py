from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from config.env import parse_duration
from realtime.models import ApiToken


class Command(BaseCommand):
    help = (
        "Issue an API token for USERNAME and print it on the last line (--expires 30d for "
        "one that expires). Clients send it as 'Authorization: Bearer <token>' or "
        "'?token=<token>'; it opens the streams, /metrics, the pages and the API's reads, "
        "never the admin or the pages' forms; --scope act lets it also acknowledge, add "
        "notes and shelve cameras through the JSON API (/api/v1/). Only its hash and its "
        "first characters are kept: --list USERNAME shows those, --revoke PREFIX revokes "
        "one (its open streams close within seconds)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--expires", metavar="AGE", help="e.g. 30d, 12h (default: never)")
        parser.add_argument(
            "--scope",
            choices=[ApiToken.READ, ApiToken.ACT],
            default=ApiToken.READ,
            help="read (default), or act: also acknowledge, note and shelve through the API",
        )
        parser.add_argument("--list", metavar="USERNAME", help="list the user's tokens")
        parser.add_argument("--revoke", metavar="PREFIX", help="revoke the token that starts so")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            self._list(options["list"])
        elif options["revoke"]:
            self._revoke(options["revoke"])
        elif options["username"]:
            self._issue(options["username"], options["expires"], options["scope"])
        else:
            raise CommandError(
                "Name a user: issue_token USERNAME (or --list USERNAME, --revoke PREFIX)"
            )

    def _user(self, username: str) -> Any:
        User = get_user_model()
        try:
            return User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc

    def _issue(self, username: str, expires: str | None, scope: str) -> None:
        user = self._user(username)
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        expires_at = None
        if expires:
            try:
                expires_at = timezone.now() + parse_duration(expires)
            except ValueError as exc:
                raise CommandError(f"--expires: {exc}") from exc
        key = ApiToken.issue(user, expires_at=expires_at, scope=scope)
        until = f", expires {expires_at:%Y-%m-%d %H:%M:%S %Z}" if expires_at else ""
        self.stderr.write(f"Token ({scope}) for {username}{until} (shown once, keep it secret):")
        self.stdout.write(key)

    def _list(self, username: str) -> None:
        user = self._user(username)
        now = timezone.now()
        for token in ApiToken.objects.filter(user=user).order_by("created_at"):
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            if token.expires_at is None:
                expires = "never expires"
            elif token.expires_at <= now:
                expires = f"expired {token.expires_at:%Y-%m-%d %H:%M}"
            else:
                expires = f"expires {token.expires_at:%Y-%m-%d %H:%M}"
            self.stdout.write(
                f"{token.label:<12} {token.scope:<4}  created {token.created_at:%Y-%m-%d %H:%M}"
                f"  last used {used}  {expires}"
            )

    def _revoke(self, prefix: str) -> None:
        if prefix.startswith("old-") and prefix[4:].isascii() and prefix[4:].isdigit():
            found = ApiToken.objects.filter(pk=int(prefix[4:]), key_prefix="")
        elif len(prefix) >= 6:
            found = ApiToken.objects.filter(Q(key_prefix__startswith=prefix))
        else:
            raise CommandError("Give at least 6 characters of the token (see --list).")
        tokens = list(found.select_related("user"))
        if not tokens:
            raise CommandError(f"No token starts with {prefix!r} (see --list USERNAME).")
        if len(tokens) > 1:
            raise CommandError(f"{len(tokens)} tokens start with {prefix!r}: give more of it.")
        [token] = tokens
        token.delete()
        self.stdout.write(f"Token {token.label} of {token.user} revoked.")
