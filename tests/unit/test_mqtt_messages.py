"""The MQTT publisher's pure parts: REALTIME_MQTT_URL, and each change's topic and payload."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime.integrations.broker import parse_url
from realtime.integrations.mqtt import outgoing
from realtime.pipeline.bus import change_message
from realtime.pipeline.changes import ChangeEvent
from realtime.streams.formats import json_text
from realtime.violations.kinds import Kind, Registry

REGISTRY = Registry((Kind("ppe", "PPE", "public", "violation_ppedetections"),))


def test_the_url_gives_broker_credentials_tls_and_the_topics_prefix() -> None:
    plain = parse_url("mqtt://user:p%40ss@broker.plant:1884/plant1")
    assert (plain.host, plain.port, plain.tls) == ("broker.plant", 1884, False)
    assert (plain.username, plain.password) == ("user", "p@ss")
    assert plain.topic("violations", "ppe", "4") == "plant1/violations/ppe/4"
    assert plain.available_topic == "plant1/available"
    assert "p@ss" not in str(plain)
    secure = parse_url("mqtts://broker")
    assert (secure.port, secure.tls, secure.prefix, secure.username) == (8883, True, "", None)
    assert secure.available_topic == "available"
    assert parse_url("mqtt://broker/site/plant1/").prefix == "site/plant1"


@pytest.mark.parametrize(
    "url", ["http://broker", "mqtt://", "mqtt://broker/plant/#", "mqtt://b/+/x", "mqtt://b:x"]
)
def test_a_url_that_is_no_broker_is_refused_by_the_settings_name(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="REALTIME_MQTT_URL"):
        parse_url(url)


def test_a_change_goes_to_its_kind_and_camera_as_the_websocket_frame() -> None:
    change: ChangeEvent = {
        "id": 41,
        "table": "violation_ppedetections",
        "op": "INSERT",
        "data": {"id": 7, "camera_id": 4, "violation_image": "/media/a.jpg"},
        "shelved": False,
        "resume": "41.900",
    }
    [(topic, payload, retain)] = outgoing([change], REGISTRY, parse_url("mqtt://b/plant1"))
    assert (topic, retain) == ("plant1/violations/ppe/4", False)
    assert payload == json_text(change_message(change))[1]
    assert json.loads(payload) == {
        "id": 41,
        "table": "violation_ppedetections",
        "op": "INSERT",
        "data": change["data"],
        "resume": "41.900",
    }


def test_an_acknowledgement_goes_to_the_violations_state_topic() -> None:
    change: ChangeEvent = {
        "id": 42,
        "table": "violation_ppedetections",
        "op": "STATE",
        "data": {"id": 7, "camera_id": 4},
        "state": {"acknowledged_by": "anna", "acknowledged_at": "2026-12-04T10:00:00+00:00"},
    }
    [(topic, payload, _)] = outgoing([change], REGISTRY, parse_url("mqtt://b/plant1"))
    assert topic == "plant1/state/ppe/7"
    assert json.loads(payload)["acknowledged_by"] == "anna"
