"""The plant's MQTT broker (issue 26): `manage.py publish_mqtt` as a subprocess, Debian's
mosquitto, a paho subscriber, and changes from real INSERTs and acknowledgements."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Process, Stack, insert_violation, server_env
from tests.mqtt_peers import Mosquitto, Received, Subscriber

PREFIX = "plant-test"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    running = Mosquitto(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    running = Subscriber(broker.port, f"{PREFIX}/#").start()
    try:
        yield running
    finally:
        running.stop()


class Publishers:
    def __init__(self, database_url: str, broker: Mosquitto, logs: Path) -> None:
        self.env = server_env(
            database_url, None, REALTIME_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}/{PREFIX}"
        )
        self.logs = logs
        self.started: list[Process] = []

    def start(self) -> Process:
        log = self.logs / f"publish_mqtt-{len(self.started)}.log"
        process = Process([sys.executable, "manage.py", "publish_mqtt"], self.env, log).start()
        process.wait_for_log("mqtt publisher started")
        self.started.append(process)
        return process


@pytest.fixture
def publishers(database_url: str, broker: Mosquitto, tmp_path: Path) -> Iterator[Publishers]:
    running = Publishers(database_url, broker, tmp_path)
    try:
        yield running
    finally:
        for process in running.started:
            process.kill()


def changes(messages: list[Received]) -> list[dict[str, Any]]:
    return [m.json() for m in messages if "/violations/" in m.topic]


def first_seen_row_ids(messages: list[Received]) -> list[int]:
    """Row ids in the order they first arrived (a subscriber drops repeats by the change's id)."""
    seen: dict[int, int] = {}
    for change in changes(messages):
        seen.setdefault(change["id"], change["data"]["id"])
    return list(seen.values())


def wait_until_placed_after(event_id: int, timeout: float = 10.0) -> None:
    from realtime.alerts.models import AlertProgress
    from realtime.pipeline.positions import Position

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = AlertProgress.objects.filter(name="mqtt").first()
        if progress is not None and Position.parse(progress.position).after >= event_id:
            return
        time.sleep(0.02)
    raise AssertionError(f"the publisher's place did not pass {event_id}")


def availability(messages: list[Received]) -> list[str]:
    return [m.payload for m in messages if m.topic == f"{PREFIX}/available"]


def test_every_change_reaches_a_subscriber_across_a_broker_restart_in_order(
    pg, broker, subscriber, publishers
) -> None:
    publishers.start()
    subscriber.wait_for(lambda got: "online" in availability(got))
    inserted: list[int] = []

    def detector() -> None:  # 150 rows over about 3 s, one transaction each
        for _ in range(150):
            inserted.append(insert_violation(pg, camera_id=4))
            time.sleep(0.02)

    writing = threading.Thread(target=detector)
    writing.start()
    subscriber.wait_for(lambda got: len(changes(got)) >= 20)
    broker.stop()  # mid-stream
    time.sleep(1.0)
    broker.start()
    writing.join()
    subscriber.wait_for(lambda got: set(first_seen_row_ids(got)) >= set(inserted), timeout=30)

    assert first_seen_row_ids(subscriber.messages) == inserted  # none lost, in order
    first = changes(subscriber.on("/violations/human/4"))[0]
    assert first["op"] == "INSERT" and first["table"] == "violation_humandetections"
    assert first["data"]["camera_id"] == 4 and first["resume"].startswith(f"{first['id']}")
    # The publisher said it was back after the restart (the broker kept no retained "online").
    assert availability(subscriber.messages).count("online") >= 2


def test_available_turns_offline_when_the_publisher_is_killed_and_online_when_it_is_back(
    broker, subscriber, publishers
) -> None:
    publisher = publishers.start()
    subscriber.wait_for(lambda got: availability(got) == ["online"])
    publisher.stop(signal.SIGKILL)
    subscriber.wait_for(lambda got: availability(got) == ["online", "offline"], timeout=10)
    publishers.start()
    subscriber.wait_for(lambda got: availability(got) == ["online", "offline", "online"])
    # Retained: a subscriber that comes later is told at once.
    late = Subscriber(broker.port, f"{PREFIX}/available", client_id="late").start()
    try:
        late.wait_for(lambda got: [(m.payload, m.retain) for m in got] == [("online", True)])
    finally:
        late.stop()


def test_a_clean_stop_says_offline(subscriber, publishers) -> None:
    publisher = publishers.start()
    subscriber.wait_for(lambda got: availability(got) == ["online"])
    assert publisher.stop(signal.SIGTERM) == 0
    subscriber.wait_for(lambda got: availability(got) == ["online", "offline"])


def test_an_acknowledgement_is_published_as_the_violations_state(
    pg, subscriber, publishers
) -> None:
    from realtime.console import actions
    from realtime.violations import queries

    publishers.start()
    subscriber.wait_for(lambda got: "online" in availability(got))
    row_id = insert_violation(pg, "violation_lotodetections", camera_id=7)
    subscriber.wait_for(lambda got: bool(subscriber.on("/violations/loto/7")))
    row = queries.named("loto", row_id, scope=None)
    assert row is not None
    actions.acknowledge("anna", [row])

    subscriber.wait_for(lambda got: bool(subscriber.on(f"/state/loto/{row_id}")))
    state = subscriber.on(f"/state/loto/{row_id}")[0].json()
    assert state["row_id"] == row_id and state["acknowledged"] is True
    assert state["acknowledged_by"] == "anna" and state["table"] == "violation_lotodetections"


def test_of_two_publishers_one_publishes_and_the_other_takes_over_when_it_dies(
    pg, subscriber, publishers
) -> None:
    first = publishers.start()
    subscriber.wait_for(lambda got: availability(got) == ["online"])
    second = publishers.start()
    second.wait_for_log("mqtt publisher standing by")
    before = [insert_violation(pg, camera_id=2) for _ in range(20)]
    subscriber.wait_for(lambda got: len(changes(got)) >= 20)
    wait_until_placed_after(changes(subscriber.messages)[-1]["id"])
    # Two publishers, no outage: each change once.
    assert sorted(change["data"]["id"] for change in changes(subscriber.messages)) == before

    first.stop(signal.SIGKILL)
    subscriber.wait_for(
        lambda got: availability(got)[-1:] == ["online"] and len(availability(got)) == 3
    )
    after = [insert_violation(pg, camera_id=2) for _ in range(20)]
    subscriber.wait_for(lambda got: set(first_seen_row_ids(got)) >= set(after))

    assert availability(subscriber.messages) == ["online", "offline", "online"]
    assert "mqtt publisher online" in second.log()
    # A repeat may come after a takeover (what the killed one sent of its last read, or what
    # committed late around its place), dropped by id; nothing lost.
    assert first_seen_row_ids(subscriber.messages) == before + after


def test_a_shelved_camera_is_retained_on_its_topic_until_the_shelf_ends(
    broker, subscriber, publishers
) -> None:
    from realtime.console import shelves

    publishers.start()
    subscriber.wait_for(lambda got: "online" in availability(got))
    shelf = shelves.shelve("anna", 9, 15, reason="lens cleaning")
    subscriber.wait_for(lambda got: bool(subscriber.on("/shelves/9")))
    [on] = subscriber.on("/shelves/9")
    assert on.json()["shelved"] is True and on.json()["shelved_by"] == "anna"
    assert on.json()["reason"] == "lens cleaning"

    shelves.end("bert", shelf)
    subscriber.wait_for(lambda got: len(subscriber.on("/shelves/9")) == 2)
    assert subscriber.on("/shelves/9")[1].json() == {"camera_id": 9, "shelved": False}
    late = Subscriber(broker.port, f"{PREFIX}/shelves/#", client_id="late").start()
    try:
        late.wait_for(lambda got: [m.json()["shelved"] for m in got] == [False])
        assert late.messages[0].retain
    finally:
        late.stop()


def test_make_runs_one_process_the_server_publishes_from_a_thread(
    database_url, broker, subscriber, pg, tmp_path
) -> None:
    """`make run`: no Redis, the listener and the publisher inside the server."""
    stack = Stack.start(
        "embedded",
        database_url,
        None,
        tmp_path,
        REALTIME_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}/{PREFIX}",
    )
    try:
        subscriber.wait_for(lambda got: availability(got) == ["online"])
        row_id = insert_violation(pg, "violation_ppedetections", camera_id=3)
        subscriber.wait_for(lambda got: first_seen_row_ids(got) == [row_id])
        assert subscriber.on("/violations/ppe/3")
    finally:
        stack.stop()
    # The server killed: its thread's session ends with it, and the broker says so.
    subscriber.wait_for(lambda got: availability(got) == ["online", "offline"])


def test_a_broker_that_lost_everything_is_told_the_shelves_again(
    broker, subscriber, publishers
) -> None:
    from realtime.console import shelves

    publishers.start()
    subscriber.wait_for(lambda got: "online" in availability(got))
    shelves.shelve("anna", 5, 15)
    subscriber.wait_for(lambda got: bool(subscriber.on("/shelves/5")))
    broker.stop()
    (broker.workdir / "mosquitto.db").unlink()  # no persistence: nothing retained
    broker.start()

    for client_id in ("late", "later"):  # the first may hear it live, the second retained
        late = Subscriber(broker.port, f"{PREFIX}/shelves/#", client_id=client_id).start()
        try:
            late.wait_for(lambda got: [m.json()["shelved"] for m in got] == [True])
        finally:
            late.stop()
    assert late.messages[0].retain
