"""The bus's seal (realtime.pipeline.signing): pure logic, no services (tests/test_bus_neighbour.py
runs it against real Redis, Daphne and listen_notify)."""

from __future__ import annotations

import logging
import time

import msgpack
import pytest
from channels_redis.serializers import MsgPackSerializer
from django.core.exceptions import ImproperlyConfigured

from realtime.pipeline import signing
from realtime.pipeline.bus import DeploymentChannelLayer
from realtime.pipeline.signing import REFUSED_TYPE, Nonces, SignedSerializer, seal

HEARTBEAT = {"type": "violation.heartbeat", "newest_id": 41, "deployment": "7/plant"}


def refused(reason: str) -> dict[str, str]:
    return {"type": REFUSED_TYPE, "reason": reason}


def test_a_signed_message_arrives_as_it_was_sent() -> None:
    sender, bridge = SignedSerializer(), SignedSerializer()
    batch = {"type": "violation.changes", "changes": [{"id": 1, "frame": "{}"}], "deployment": "x"}
    assert bridge.deserialize(sender.serialize(batch)) == batch
    assert bridge.deserialize(sender.serialize(HEARTBEAT)) == HEARTBEAT


def test_every_byte_is_covered_by_the_signature() -> None:
    wire = SignedSerializer().serialize(HEARTBEAT)
    for position in range(len(wire)):
        if 4 <= position < 12:
            continue  # the time sent: changed, it is mostly "expired" (below)
        changed = bytearray(wire)
        changed[position] ^= 0x01
        assert SignedSerializer().deserialize(bytes(changed))["type"] == REFUSED_TYPE, position


def test_a_message_sealed_with_another_key_is_forged(settings) -> None:
    body = msgpack.packb(HEARTBEAT)
    other = seal(body, b"n" * 16, time.time(), "another deployment's key " * 2)
    assert SignedSerializer().deserialize(other) == refused("forged")
    # The time sent is signed too: moved within the window, it no longer verifies.
    wire = bytearray(SignedSerializer().serialize(HEARTBEAT))
    wire[4:12] = signing.HEADER.pack(signing.MAGIC, time.time() - 1, b"n" * 16)[4:12]
    assert SignedSerializer().deserialize(bytes(wire)) == refused("forged")


def test_a_former_key_still_verifies_while_it_is_a_fallback(settings) -> None:
    old = "the-key-before-the-rotation-0123456789abcdef"
    settings.SECRET_KEY = old
    sent_before = SignedSerializer().serialize(HEARTBEAT)
    settings.SECRET_KEY = "the-key-after-the-rotation-0123456789abcdef"
    settings.SECRET_KEY_FALLBACKS = [old]
    assert SignedSerializer().deserialize(sent_before) == HEARTBEAT
    settings.SECRET_KEY_FALLBACKS = []
    assert SignedSerializer().deserialize(sent_before) == refused("forged")


@pytest.mark.parametrize("offset", [-31.0, 31.0, float("nan"), float("inf")])
def test_a_message_outside_the_window_is_expired(settings, offset) -> None:
    settings.REALTIME_BUS_MAX_AGE = 30.0
    wire = seal(msgpack.packb(HEARTBEAT), b"n" * 16, time.time() + offset, settings.SECRET_KEY)
    assert SignedSerializer().deserialize(wire) == refused("expired")


def test_clocks_apart_by_less_than_the_window_are_fine(settings) -> None:
    settings.REALTIME_BUS_MAX_AGE = 30.0
    for offset in (-25.0, 25.0):
        wire = seal(msgpack.packb(HEARTBEAT), bytes(16), time.time() + offset, settings.SECRET_KEY)
        assert SignedSerializer().deserialize(wire) == HEARTBEAT


def test_a_message_comes_once() -> None:
    wire = SignedSerializer().serialize(HEARTBEAT)
    bridge = SignedSerializer()
    assert bridge.deserialize(wire) == HEARTBEAT
    assert bridge.deserialize(wire) == refused("replayed")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"rtb1",
        b"rtb1" + bytes(52),
        bytes(200),
        # What a listener of the version before sent (and what channels-redis sends).
        MsgPackSerializer().serialize({"type": "violation.changes", "changes": []}),
        MsgPackSerializer().serialize(HEARTBEAT) + bytes(64),
    ],
)
def test_anything_else_is_refused_and_never_raises(data) -> None:
    assert SignedSerializer().deserialize(data)["type"] == REFUSED_TYPE


def test_refusals_are_counted_and_told_once_a_minute(caplog) -> None:
    from realtime import metrics

    before = metrics.BUS_MESSAGES_REFUSED.labels("unsigned")._value.get()
    bridge = SignedSerializer()
    with caplog.at_level(logging.WARNING, logger="realtime.pipeline.signing"):
        for _ in range(5):
            bridge.deserialize(b"anyone may publish")
    assert metrics.BUS_MESSAGES_REFUSED.labels("unsigned")._value.get() == before + 5
    [told] = [r for r in caplog.records if r.name == "realtime.pipeline.signing"]
    assert told.unsigned == 1, "the first at once; the next ones a minute later, added up"


def test_nonces_are_kept_while_they_could_be_accepted_and_no_more() -> None:
    nonces = Nonces(most=3)
    nonces.add(b"a", until=10.0, now=0.0)
    nonces.add(b"b", until=20.0, now=0.0)
    assert b"a" in nonces and b"b" in nonces
    nonces.add(b"c", until=30.0, now=15.0)  # a's message is too old to be accepted now
    assert b"a" not in nonces and b"b" in nonces and b"c" in nonces
    nonces.add(b"d", until=40.0, now=16.0)
    nonces.add(b"e", until=40.0, now=16.0)  # bounded: the oldest goes first
    assert len(nonces) == 3 and b"b" not in nonces


def test_the_deployments_layer_always_signs() -> None:
    layer = DeploymentChannelLayer(hosts=["redis://127.0.0.1:6379/15"], serializer_format="json")
    assert isinstance(layer._serializer, SignedSerializer)
    with pytest.raises(ImproperlyConfigured, match="symmetric_encryption_keys"):
        DeploymentChannelLayer(hosts=[], symmetric_encryption_keys=["k"])
