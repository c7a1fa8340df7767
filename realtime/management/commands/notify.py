import signal
from typing import Any

from django.core.management.base import BaseCommand

from realtime.alerts.worker import Worker


class Command(BaseCommand):
    help = (
        "Send the alerts the rules call for (e-mail and chat), decided from the event log. "
        "Run it under a supervisor beside listen_notify; several may run, each message is "
        "sent by one. Stops on SIGTERM/SIGINT after the message it is sending."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        worker.run()
