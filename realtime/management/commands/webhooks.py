"""`manage.py webhooks add URL [--secret S] [--kind K ...] [--site NAME ...]`, `list`,
`remove ID`: the programs' signed webhooks (docs/how-to/webhooks.md)."""

import base64
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import URLValidator
from django.db import transaction

from realtime.models import Site, Webhook
from realtime.violations import kinds


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Command(BaseCommand):
    help = "Add, list or remove the webhooks that receive every change, signed."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="subscribe a URL")
        add.add_argument("url")
        add.add_argument("--secret", help="whsec_... (made for you when left out)")
        add.add_argument("--kind", action="append", default=[], help="a kind's slug; repeat")
        add.add_argument("--site", action="append", default=[], help="a site's name; repeat")
        sub.add_parser("list", help="the webhooks, their state and their backlog")
        remove = sub.add_parser("remove", help="unsubscribe (its deliveries go too)")
        remove.add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options: dict[str, Any]) -> None:
        try:
            URLValidator(schemes=["http", "https"])(options["url"])
        except ValidationError:
            raise CommandError(f"not an http(s) URL: {options['url']!r}") from None
        secret = options["secret"] or new_secret()
        if not secret.startswith("whsec_"):
            raise CommandError("a secret is whsec_ and base64 (leave --secret out for one)")
        try:
            base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise CommandError("the secret after whsec_ is not base64") from None
        known = kinds.registry().by_slug
        unknown = [k for k in options["kind"] if k not in known]
        if unknown:
            raise CommandError(f"no such kind: {', '.join(unknown)} (known: {', '.join(known)})")
        sites = list(Site.objects.filter(name__in=options["site"]))
        missing = set(options["site"]) - {site.name for site in sites}
        if missing:
            raise CommandError(f"no such site: {', '.join(sorted(missing))}")
        with transaction.atomic():
            hook = Webhook.objects.create(url=options["url"], secret=secret, kinds=options["kind"])
            hook.sites.set(sites)
        self.stdout.write(f"Webhook {hook.pk} added: {hook.url}")
        if not options["secret"]:
            self.stdout.write(f"Its secret (verify the signatures with it): {secret}")

    def _list(self, options: dict[str, Any]) -> None:
        for hook in Webhook.objects.prefetch_related("sites"):
            pending = hook.deliveries.exclude(status="sent").count()
            state = "enabled" if hook.enabled else f"disabled: {hook.disabled_reason}"
            scope = ", ".join(
                [*(f"kind {k}" for k in hook.kinds), *(f"site {s.name}" for s in hook.sites.all())]
            )
            self.stdout.write(
                f"{hook.pk}  {hook.url}  {scope or 'everything'}  {state}  {pending} waiting"
            )

    def _remove(self, options: dict[str, Any]) -> None:
        deleted, _ = Webhook.objects.filter(pk=options["id"]).delete()
        if not deleted:
            raise CommandError(f"no webhook {options['id']}")
        self.stdout.write(f"Webhook {options['id']} removed.")
