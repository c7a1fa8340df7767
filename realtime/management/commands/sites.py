"""`manage.py sites`: sites (sets of cameras) and who is given them, for scripts.

    sites set NAME --cameras 1,2,5-9     creates the site or replaces its cameras
    sites grant NAME USERNAME             gives a user the site (--group GROUP: a group)
    sites revoke NAME USERNAME            takes it back (--group GROUP)
    sites delete NAME
    sites list

Open streams follow within seconds (realtime.access.open_streams). The rule is
realtime.access.scopes'.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from realtime.access import scopes
from realtime.models import Site


class Command(BaseCommand):
    help = "Sites (sets of cameras) and the users and groups given them."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        made = actions.add_parser("set", help="create a site or replace its cameras")
        made.add_argument("name")
        made.add_argument("--cameras", required=True, help="numbers and ranges, like 1,2,5-9")
        for action in ("grant", "revoke"):
            given = actions.add_parser(action, help=f"{action} a user (or --group) the site")
            given.add_argument("name")
            given.add_argument("username", nargs="?")
            given.add_argument("--group", help="a group instead of a user")
        gone = actions.add_parser("delete", help="delete a site")
        gone.add_argument("name")
        actions.add_parser("list", help="the sites, their cameras and who has them")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list()
            return
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("A site's name has 1 to 100 characters.")
        if action == "set":
            self._set(name, options["cameras"])
        elif action == "delete":
            deleted, _ = Site.objects.filter(name=name).delete()
            if not deleted:
                raise CommandError(f"There is no site {name!r}.")
            self.stdout.write(f"Deleted the site {name}.")
        else:
            self._grant(name, options, grant=action == "grant")
        scopes.forget()

    def _set(self, name: str, spec: str) -> None:
        try:
            cameras = scopes.parse_cameras(spec)
        except scopes.BadCameras as exc:
            raise CommandError(f"--cameras: {exc}") from exc
        site, created = Site.objects.update_or_create(name=name, defaults={"cameras": cameras})
        self.stdout.write(
            f"{'Created' if created else 'Updated'} the site {site.name}: cameras "
            f"{scopes.format_cameras(cameras) or '(none)'}."
        )

    def _grant(self, name: str, options: dict[str, Any], *, grant: bool) -> None:
        username, group_name = options["username"], options["group"]
        if (username is None) == (group_name is None):
            raise CommandError("Name a user or a --group (one of them).")
        site = Site.objects.filter(name=name).first()
        if site is None:
            raise CommandError(f"There is no site {name!r} (sites set {name} --cameras ...).")
        with transaction.atomic():
            if group_name is not None:
                group = Group.objects.filter(name=group_name).first()
                if group is None:
                    raise CommandError(f"There is no group {group_name!r}.")
                (site.groups.add if grant else site.groups.remove)(group)
                who = f"the group {group.name}"
            else:
                user = get_user_model().objects.filter(username=username).first()
                if user is None:
                    raise CommandError(f"There is no user {username!r}.")
                (site.users.add if grant else site.users.remove)(user)
                who = user.get_username()
        done = f"Gave {who} the site" if grant else f"Took the site {site.name} from {who}"
        self.stdout.write(f"{done} {site.name}." if grant else f"{done}.")

    def _list(self) -> None:
        sites = Site.objects.prefetch_related("users", "groups")
        if not sites:
            self.stdout.write("No sites: everyone who may log in sees every violation.")
            return
        for site in sites:
            given = [user.get_username() for user in site.users.all()]
            given += [f"group {group.name}" for group in site.groups.all()]
            self.stdout.write(
                f"{site.name}\tcameras {scopes.format_cameras(site.cameras) or '(none)'}"
                f"\tgiven to {', '.join(given) or 'nobody'}"
            )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser
