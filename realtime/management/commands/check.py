from typing import Any

from django.core.management.commands.check import Command as DjangoCheck
from django.db import DEFAULT_DB_ALIAS


class Command(DjangoCheck):
    help = (
        "Django's check, and by default also the database checks (as `check --database "
        "default`): the detectors' tables, their triggers and indexes."
    )

    def handle(self, *app_labels: Any, **options: Any) -> None:
        if not options["databases"]:
            options["databases"] = [DEFAULT_DB_ALIAS]
        super().handle(*app_labels, **options)
