"""The plant's MQTT broker as the publisher sees it: where it is (REALTIME_MQTT_URL), one
connection to it (paho-mqtt) with its last will, and which messages it acknowledged.
Messages are sent without waiting for their PUBACK (the publisher counts them later): a
subscriber gets a change as soon as the broker does.

A connection is used until it breaks and is then thrown away with whatever paho still
queued: the publisher sends again from its place in the log on a new one, so paho's own
resending never mixes with ours (in order, at the cost of a repeat).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.core.exceptions import ImproperlyConfigured
from paho.mqtt.enums import CallbackAPIVersion

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
KEEPALIVE_SECONDS = 10
# Messages on their way at once (paho's default is 20): a burst is not one round trip each.
MAX_INFLIGHT = 200
NO_RECONNECT_SECONDS = 3600


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    # The topics' prefix ("plant1"): the URL's path; "" for none.
    prefix: str

    def topic(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    @property
    def available_topic(self) -> str:
        return self.topic("available")

    def __str__(self) -> str:  # no password in a log line
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}/{self.prefix}"


def parse_url(url: str) -> BrokerAddress:
    """`mqtt://user:pass@broker:1883/plant1` (mqtts:// for TLS; the path is the prefix)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ImproperlyConfigured(
            "REALTIME_MQTT_URL must be mqtt://[user:password@]host[:port][/prefix]"
            " or mqtts://... for TLS"
        )
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REALTIME_MQTT_URL has a bad port: {exc}") from exc
    prefix = unquote(parts.path).strip("/")
    if parts.query or "#" in url or any(c in prefix for c in "+#\0"):
        raise ImproperlyConfigured(
            "REALTIME_MQTT_URL's path (the topics' prefix) may not hold + or #, nor a ?query"
        )
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        prefix=prefix,
    )


class BrokerGone(Exception):
    """The connection broke, or the broker did not acknowledge in time."""


class BrokerConnection:
    """One MQTT session: `online` retained on connecting, `offline` its last will."""

    def __init__(self, address: BrokerAddress) -> None:
        self.address = address
        client_id = f"realtime-{socket.gethostname()}-{os.getpid()}-{time.monotonic_ns()}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        if address.username is not None:
            self.client.username_pw_set(address.username, address.password)
        if address.tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        # paho would reconnect by itself and resend what it holds: this session is over
        # when it breaks (the publisher closes it and opens another long before this).
        self.client.reconnect_delay_set(NO_RECONNECT_SECONDS, NO_RECONNECT_SECONDS)
        self.client.will_set(address.available_topic, OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._changed = threading.Condition()
        self._acked: set[int] = set()
        self._connected = False
        self._gone = False

    def open(self, timeout: float) -> None:
        """Connect, and wait for the broker's CONNACK and its PUBACK of `online`."""
        try:
            self.client.connect(self.address.host, self.address.port, KEEPALIVE_SECONDS)
        except (OSError, ValueError) as exc:
            raise BrokerGone(f"cannot connect: {exc!r}") from exc
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # an SSLSocket too
            # Each PUBLISH at once: with Nagle's algorithm a message written while the one
            # before is unacknowledged waited for the broker's delayed ACK (40 ms on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        with self._changed:
            self._changed.wait_for(lambda: self._connected or self._gone, timeout)
            if not self._connected:
                raise BrokerGone("the broker refused or did not answer")
        self.publish_all([(self.address.available_topic, ONLINE, True)], timeout)

    def send(self, messages: list[tuple[str, str, bool]]) -> list[int]:
        """Publish (topic, payload, retain) with QoS 1, in order, without waiting: the
        message ids, for `all_acked` and `wait_acked`."""
        mids = []
        for topic, payload, retain in messages:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerGone(f"publish failed: {mqtt.error_string(info.rc)}")
            mids.append(info.mid)
        return mids

    def all_acked(self, mids: list[int]) -> bool:
        """Whether the broker acknowledged (PUBACK) each of these; if so, forgets them."""
        with self._changed:
            if not self._acked.issuperset(mids):
                return False
            self._acked.difference_update(mids)
            return True

    def wait_acked(self, mids: list[int], timeout: float) -> None:
        with self._changed:
            done = self._changed.wait_for(
                lambda: self._gone or self._acked.issuperset(mids), timeout
            )
            if self._gone or not done:
                raise BrokerGone("not acknowledged" if not self._gone else "connection lost")

    def publish_all(self, messages: list[tuple[str, str, bool]], timeout: float) -> None:
        """Publish and wait until the broker acknowledged every one, or raise BrokerGone."""
        mids = self.send(messages)
        self.wait_acked(mids, timeout)
        self.all_acked(mids)

    @property
    def gone(self) -> bool:
        return self._gone

    def close(self, say_offline: bool = False, timeout: float = 2.0) -> None:
        """End the session; with `say_offline`, publish `offline` first (a clean stop, when the
        broker would not send the last will)."""
        if say_offline and not self._gone:
            try:
                self.publish_all([(self.address.available_topic, OFFLINE, True)], timeout)
            except BrokerGone:
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._changed:
            if reason_code.is_failure:
                self._gone = True
                logger.warning(
                    "mqtt broker refused the connection", extra={"reason": str(reason_code)}
                )
            else:
                self._connected = True
            self._changed.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._changed:
            self._gone = True
            self._changed.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._changed:
            self._acked.add(mid)
            self._changed.notify_all()
