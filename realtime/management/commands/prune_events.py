from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from config.env import parse_duration
from realtime.pipeline.database import conninfo_from_django
from realtime.pipeline.retention import prune_events


class Command(BaseCommand):
    help = (
        "Delete events older than REALTIME_EVENT_RETENTION (default 7d) from the event log. "
        "The active listener does this hourly by itself."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", metavar="AGE", help="e.g. 30d, 12h, 90m (default: the retention)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = settings.REALTIME_EVENT_RETENTION
        if options["older_than"]:
            try:
                older_than = parse_duration(options["older_than"])
            except ValueError as exc:
                raise CommandError(f"--older-than: {exc}") from exc
        conninfo = conninfo_from_django(connections["default"].settings_dict)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            deleted = prune_events(conn, older_than)
        self.stdout.write(f"pruned {deleted} events older than {older_than}")
