import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from realtime.integrations.mqtt import make_publisher

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Publish every change and acknowledgement to the MQTT broker of REALTIME_MQTT_URL, "
        "from the event log. Run it under a supervisor beside listen_notify; several may run, "
        "one publishes. Without REALTIME_MQTT_URL it waits, idle. Stops on SIGTERM/SIGINT."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()
        if not settings.REALTIME_MQTT_URL:
            logger.info("REALTIME_MQTT_URL is not set; publish_mqtt idle")
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
            stopping.wait()
            return
        publisher = make_publisher(settings.REALTIME_MQTT_URL)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: publisher.stop())
        publisher.run()
