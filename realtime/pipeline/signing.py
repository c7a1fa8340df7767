"""Every message on the Redis bus is signed by this deployment and checked where it arrives.

Any client of a Redis server can list its pub/sub channels (`PUBSUB CHANNELS`), subscribe
to them and publish on them, whatever the database number: a per-deployment prefix hides
nothing (issue #22). So the channel layer's serializer (channels-redis' documented
extension point, `serializer_format`) wraps each message:

    b"rtb1" | time sent (8 bytes) | nonce (16) | the message (msgpack) | HMAC-SHA256 (32)

keyed from SECRET_KEY with a purpose salt (`salted_hmac`; SECRET_KEY_FALLBACKS verify
too, for a key rotation). A message that is unsigned, forged, older (or newer) than
REALTIME_BUS_MAX_AGE by the receiver's clock, or a nonce already taken, is refused:
counted, told at most once a minute, and handed to the bridge as a `violation.refused`
message that it ignores. Nothing raises: what a neighbour publishes cannot stop a bridge.

A refused batch is not lost: the bridge reads what it did not dispatch from the log after
the listener's next heartbeat (realtime.streams.bridge). The in-memory layer (one process) has no
serializer and needs none.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import struct
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from channels_redis.serializers import MsgPackSerializer, registry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import constant_time_compare, salted_hmac

from realtime import metrics

logger = logging.getLogger(__name__)

# The channel layer's `serializer_format` (realtime.pipeline.bus.DeploymentChannelLayer).
FORMAT = "realtime-signed"
# What the bridge receives instead of a message that was refused.
REFUSED_TYPE = "violation.refused"
MAGIC = b"rtb1"  # the format's version too: a change of layout takes another
HEADER = struct.Struct(">4sd16s")  # MAGIC, time sent (Unix seconds), nonce
MAC_SIZE = 32
SALT = "realtime.bus_signing.v1"
# Nonces remembered at most (each for REALTIME_BUS_MAX_AGE); the listener sends far fewer.
NONCES_KEPT = 200_000
REFUSED_LOG_INTERVAL = 60.0


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def mac_of(signed: bytes | memoryview, secret: str) -> bytes:
    mac = salted_hmac(SALT, b"", secret, algorithm="sha256")
    mac.update(signed)
    return mac.digest()


def seal(body: bytes, nonce: bytes, sent_at: float, secret: str) -> bytes:
    signed = HEADER.pack(MAGIC, sent_at, nonce) + body
    return signed + mac_of(signed, secret)


def unseal(data: bytes, now: float, max_age: float, keys: Sequence[str], seen: Nonces) -> bytes:
    """The body of a sealed message, or Refused: cheap checks first, the nonce taken last."""
    if not isinstance(data, bytes) or len(data) < HEADER.size + MAC_SIZE:
        raise Refused("unsigned")
    magic, sent_at, nonce = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise Refused("unsigned")  # an older listener's plain message, or anyone's
    if not abs(now - sent_at) <= max_age:  # NaN too
        raise Refused("expired")
    if nonce in seen:
        raise Refused("replayed")
    signed, mac = memoryview(data)[:-MAC_SIZE], data[-MAC_SIZE:]
    if not any(constant_time_compare(mac_of(signed, key), mac) for key in keys):
        raise Refused("forged")
    seen.add(nonce, until=sent_at + max_age, now=now)
    return data[HEADER.size : -MAC_SIZE]


class Nonces:
    """Nonces of the messages accepted, kept while the message could be accepted again."""

    def __init__(self, most: int = NONCES_KEPT) -> None:
        self._most = most
        self._until: deque[tuple[float, bytes]] = deque()
        self._kept: set[bytes] = set()

    def __contains__(self, nonce: bytes) -> bool:
        return nonce in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, nonce: bytes, until: float, now: float) -> None:
        while self._until and (self._until[0][0] < now or len(self._until) >= self._most):
            self._kept.discard(self._until.popleft()[1])
        self._until.append((until, nonce))
        self._kept.add(nonce)


class Refusals:
    """Counted, and told at most once a minute: anyone on the Redis may publish, often."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._told_at = -REFUSED_LOG_INTERVAL

    def add(self, reason: str) -> None:
        metrics.BUS_MESSAGES_REFUSED.labels(reason).inc()
        self.counts[reason] += 1
        now = time.monotonic()
        if now - self._told_at >= REFUSED_LOG_INTERVAL:
            logger.warning(
                "refused bus messages this deployment did not sign (a neighbour on the Redis,"
                " a listener of an older version or with another DJANGO_SECRET_KEY, or clocks"
                " further apart than REALTIME_BUS_MAX_AGE)",
                extra=dict(self.counts),
            )
            self.counts, self._told_at = Counter(), now


def verifying_keys() -> list[str]:
    return [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


class SignedSerializer(MsgPackSerializer):
    """channels-redis' msgpack serializer, each message sealed; a refused one never raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.crypter:
            raise ImproperlyConfigured(
                "realtime.pipeline.bus.DeploymentChannelLayer signs its messages and does not take"
                " symmetric_encryption_keys: keep neighbours from reading the bus with Redis"
                " ACLs and TLS (docs/how-to/shared-redis.md)."
            )
        self._sender = secrets.token_bytes(8)  # with a counter: nonces never repeat
        self._sent = itertools.count()
        self.nonces = Nonces()
        self.refusals = Refusals()

    def serialize(self, message: dict[str, Any]) -> bytes:
        body = self.as_bytes(message)
        nonce = self._sender + next(self._sent).to_bytes(8, "big")
        return seal(body, nonce, time.time(), settings.SECRET_KEY)

    def deserialize(self, data: bytes) -> dict[str, Any]:
        try:
            body = unseal(
                data, time.time(), settings.REALTIME_BUS_MAX_AGE, verifying_keys(), self.nonces
            )
        except Refused as refused:
            self.refusals.add(refused.reason)
            return {"type": REFUSED_TYPE, "reason": refused.reason}
        message: dict[str, Any] = self.from_bytes(body)
        return message


registry.register_serializer(FORMAT, SignedSerializer)
