import asyncio
from typing import Any

from django.core.management.base import BaseCommand

from realtime.runtime import serve_listener


class Command(BaseCommand):
    help = (
        "LISTEN for changes to watched tables and forward each one to the Channels group. "
        "Run it under a supervisor; several may run, one forwards. Stops on SIGTERM/SIGINT."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(serve_listener())
