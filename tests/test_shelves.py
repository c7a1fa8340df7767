"""Shelving a camera (issue #15): its new violations are still recorded and listed, marked
shelved, make no sound and are not counted; the shelf ends by itself.

A violation is shelved when its own date and time (the plant's local time, as the detector
wrote them) fall in a shelf of its camera: the same answer live, after a reload, in the
counters and in the detail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from realtime.models import Shelf
from realtime.pipeline import event_log
from realtime.pipeline.bus import change_message
from realtime.streams.formats import row_fragments
from realtime.violations import kinds
from tests.helpers import insert_violation, newest_event

pytestmark = pytest.mark.django_db(transaction=True)


def insert_at(pg: Any, camera: int, local: datetime, image: str, table: str = "ppe") -> int:
    """A violation the detector stamped with `local` (plant time, naive)."""
    row = pg.execute(
        f"INSERT INTO violation_{table}detections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        [camera, local.date(), local.time(), image],
    ).fetchone()
    return int(row[0])


def plant_now(offset: timedelta = timedelta()) -> datetime:
    return (timezone.localtime() + offset).replace(tzinfo=None)


def shelve(client: Client, camera: Any = 7, minutes: Any = 60, reason: str = "") -> Any:
    return client.post("/shelves/", {"camera": camera, "minutes": minutes, "reason": reason})


def test_a_shelved_cameras_new_violations_are_listed_marked_and_not_counted(pg, client_of) -> None:
    anna = client_of("anna")
    before = insert_at(pg, 7, plant_now(-timedelta(minutes=5)), "/media/before.jpg")
    response = shelve(anna, 7, 60, "Lens cleaning")
    assert response.status_code == 200
    assert "Camera 7" in response.content.decode() and "anna" in response.content.decode()
    during = insert_at(pg, 7, plant_now(timedelta(seconds=1)), "/media/during.jpg")
    other = insert_at(pg, 8, plant_now(timedelta(seconds=1)), "/media/other.jpg")

    page = anna.get("/").content.decode()
    assert f'id="violation-ppe-{during}" class="violation kind-ppe shelved"' in page
    assert f'id="violation-ppe-{before}" class="violation kind-ppe"' in page
    assert f'id="violation-ppe-{other}" class="violation kind-ppe"' in page
    assert page.count('class="shelved-mark"') == 1
    # Counted: the violation before the shelf and the other camera's, not the shelved one.
    assert '<span class="count" data-kind="ppe">2</span>' in page
    assert "Lens cleaning" in page, "the page lists the camera's shelf"
    detail = anna.get(f"/violations/ppe/{during}/").content.decode()
    assert "Shelved" in detail and "Lens cleaning" in detail and "anna" in detail
    assert "Shelved" not in anna.get(f"/violations/ppe/{before}/").content.decode()


def test_the_live_change_of_a_shelved_camera_is_drawn_shelved(pg, client_of) -> None:
    """What the listener reads from the log says so (one query per batch, not per client).

    The detector stamps its violations to the second (insert_violation: LOCALTIME(0)); one
    in the very second the camera was shelved is shelved too."""
    shelve(client_of("bert"), 3, 15)
    start = newest_event(pg)
    shelved = insert_violation(pg, "violation_lotodetections", camera_id=3)
    unshelved = insert_violation(pg, "violation_lotodetections", camera_id=4)
    changes = event_log.changes_after(start, 10)
    assert [(c["data"]["id"], c.get("shelved")) for c in changes] == [
        (shelved, True),
        (unshelved, False),
    ]
    registry = kinds.registry()
    drawn = dict(row_fragments(change_message(changes[0]), registry))
    assert 'class="violation kind-loto shelved is-new"' in drawn["table/*/*"]
    assert "shelved" not in dict(row_fragments(change_message(changes[1]), registry))["table/*/*"]
    assert "shelved" not in json.loads(change_message(changes[0])["frame"]), (
        "the JSON streams' change objects stay as they were"
    )


def test_a_shelf_ends_by_itself_and_can_be_ended_early(pg, client_of) -> None:
    now = timezone.now()
    Shelf.objects.create(
        camera_id=5,
        shelved_by="carla",
        shelved_at=now - timedelta(hours=2),
        until=now - timedelta(hours=1),
        time_zone="UTC",
    )
    after_it = insert_at(pg, 5, plant_now(), "/media/after-it.jpg")
    client = client_of("dora")
    assert "Shelved" not in client.get(f"/violations/ppe/{after_it}/").content.decode()
    listed = client.get("/").content.decode()
    assert f'id="violation-ppe-{after_it}" class="violation kind-ppe"' in listed
    assert "No camera is shelved" in client.get("/shelves/").content.decode()

    shelve(client, 5, 240)
    shelf = Shelf.objects.get(ended_at__isnull=True, until__gt=timezone.now())
    during = insert_at(pg, 5, plant_now(), "/media/during.jpg")
    ended = client.post(f"/shelves/{shelf.pk}/end/")
    assert ended.status_code == 200 and "No camera is shelved" in ended.content.decode()
    shelf.refresh_from_db()
    assert shelf.ended_by == "dora" and shelf.ended_at is not None
    later = insert_at(pg, 5, plant_now(timedelta(seconds=2)), "/media/later.jpg")
    page = client.get("/?camera=5").content.decode()
    assert f'id="violation-ppe-{during}" class="violation kind-ppe shelved"' in page
    assert f'id="violation-ppe-{later}" class="violation kind-ppe"' in page
    assert client.post(f"/shelves/{shelf.pk}/end/").status_code == 200, "ending twice is fine"
    assert client.post("/shelves/999999/end/").status_code == 404


def test_shelving_a_shelved_camera_again_replaces_its_end(pg, client_of) -> None:
    client = client_of("emil")
    shelve(client, 9, 15)
    shelve(client, 9, 480, "Maintenance all shift")
    active = Shelf.objects.filter(ended_at__isnull=True)
    assert [(s.camera_id, s.reason) for s in active] == [(9, "Maintenance all shift")]
    assert Shelf.objects.count() == 2, "the first shelf is kept, ended"
    listed = client.get("/shelves/").content.decode()
    assert listed.count('class="shelf"') == 1 and "Maintenance all shift" in listed


@override_settings(TIME_ZONE="America/New_York")
def test_the_plants_local_time_decides_what_a_shelf_covers(pg, client_of) -> None:
    shelve(client_of("fritz"), 11, 30)
    inside = insert_at(pg, 11, plant_now(timedelta(seconds=1)), "/media/inside.jpg")
    # The same clock reading in UTC is hours away from the shelf in New York.
    utc_reading = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    outside = insert_at(pg, 11, utc_reading, "/media/utc-reading.jpg")
    page = Client()
    page.force_login(get_user_model().objects.get(username="fritz"))
    body = page.get("/?camera=11").content.decode()
    assert f'id="violation-ppe-{inside}" class="violation kind-ppe shelved"' in body
    assert f'id="violation-ppe-{outside}" class="violation kind-ppe"' in body


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"minutes": "60"}, "camera must be a camera number"),
        ({"camera": "seven", "minutes": "60"}, "camera must be a camera number"),
        ({"camera": "-1", "minutes": "60"}, "camera must be a camera number"),
        ({"camera": "9" * 12, "minutes": "60"}, "camera must be a camera number"),
        ({"camera": "7"}, "minutes must be a whole number from 1 to 720"),
        ({"camera": "7", "minutes": "0"}, "minutes must be a whole number from 1 to 720"),
        ({"camera": "7", "minutes": "721"}, "minutes must be a whole number from 1 to 720"),
        ({"camera": "7", "minutes": "1e3"}, "minutes must be a whole number from 1 to 720"),
        (
            {"camera": "7", "minutes": "60", "reason": "bell\x07"},
            "A reason cannot contain control characters.",
        ),
        ({"camera": "7", "minutes": "60", "reason": "x" * 201}, "A reason has at most 200"),
    ],
)
def test_shelving_refuses_what_it_cannot_do_and_changes_nothing(
    client_of, form: dict[str, str], message: str
) -> None:
    response = client_of("gina").post("/shelves/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Shelf.objects.exists()


def test_shelves_need_a_login_and_a_post(client_of) -> None:
    assert Client().post("/shelves/", {"camera": "7", "minutes": "60"}).status_code == 302
    assert Client().get("/shelves/").status_code == 302
    client = client_of("hans")
    assert client.put("/shelves/").status_code == 405
    assert client.get("/shelves/1/end/").status_code == 405
    assert not Shelf.objects.exists()
