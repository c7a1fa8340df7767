"""The MQTT peers the tests and bench/mqtt.py drive: Debian's mosquitto on a port of their
own (stopped and started again at will), and a paho subscriber that records what it got."""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.ports import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto:
    """A broker with persistence: a subscriber's session and its queued messages outlive a
    restart (as a plant's broker keeps them)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            # Started as root, mosquitto would become the user mosquitto, who may not write
            # here; as anyone else, `user` is ignored.
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\n"
            f"log_dest file {workdir}/mosquitto.log\n"
        )
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.popen = subprocess.Popen([MOSQUITTO, "-c", str(self.config)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)


@dataclass
class Received:
    topic: str
    payload: str
    retain: bool
    at: float  # time.time() when it arrived

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A persistent session (clean_session false, QoS 1): what the broker queued for it while
    it was away is delivered when it is back."""

    port: int
    topic: str
    client_id: str = "test-subscriber"
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changed = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.subscribed = threading.Event()

    def start(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.port, 5)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the subscriber did not subscribe"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, check: Callable[[list[Received]], bool], timeout: float = 20.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: check(self.messages), timeout):
                raise AssertionError(f"not received in {timeout}s; got {self.messages[-5:]}")

    def on(self, suffix: str) -> list[Received]:
        with self.changed:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(self.topic, qos=1)
        self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        with self.changed:
            self.messages.append(
                Received(message.topic, message.payload.decode(), message.retain, time.time())
            )
            self.changed.notify_all()
