from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection

from realtime.schema import describe


class Command(BaseCommand):
    help = (
        "Print the product's schema as it is now (tables, functions, triggers), for sql/"
        "schema.sql: python manage.py schema_sql > sql/schema.sql"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with connection.cursor() as cursor:
            self.stdout.write(describe(cursor), ending="")
