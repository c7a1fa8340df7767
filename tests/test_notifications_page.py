"""What was sent, where an operator looks (#25): /notifications/ lists the outbox's messages,
the failed first, each with only the violations its reader may see; a violation's detail
lists its own; a failed message is handed back to the worker. The rows are written here as
the worker writes them (tests/outbox_rows.py); the page and the views are the product's."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from realtime.access import scopes
from realtime.alerts.models import Contact, Notification
from tests.helpers import insert_violation
from tests.outbox_rows import key, message

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_URL = "json://hooks.example/s3cr3t-t0ken"


def client_for(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def sites(*args: str) -> None:
    call_command("sites", *args, stdout=io.StringIO())
    scopes.forget()


@pytest.fixture
def plant(pg: Any) -> dict[str, Any]:
    """North (cameras 1-5) and South (6-10); nora operates North and may read the messages,
    paul operates North and may not, root sees everything. Violations of both sites."""
    users = get_user_model().objects
    made: dict[str, Any] = {
        "nora": users.create_user("nora", password="a-long-password-1"),
        "paul": users.create_user("paul", password="a-long-password-1"),
        "root": users.create_superuser("root", "r@example.com", "a-long-password-1"),
    }
    made["nora"].user_permissions.add(Permission.objects.get(codename="view_notifications"))
    sites("set", "North", "--cameras", "1-5")
    sites("set", "South", "--cameras", "6-10")
    for user in ("nora", "paul"):
        sites("grant", "North", user)
    Contact.objects.create(name="safety-team", url=SECRET_URL)
    Contact.objects.create(name="south-desk", url="mailto:south@plant.example")
    made["north"] = insert_violation(pg, "violation_ppedetections", camera_id=2, image="/m/n2.jpg")
    made["north2"] = insert_violation(pg, "violation_ppedetections", camera_id=3, image="/m/n3.jpg")
    made["south"] = insert_violation(pg, "violation_ppedetections", camera_id=7, image="/m/s7.jpg")
    made["none"] = insert_violation(pg, "violation_humandetections", camera_id=None)
    return made


def listed(html: str) -> list[int]:
    """The messages on the page, in its order."""
    return [int(n) for n in re.findall(r'<li id="message-([0-9]+)"', html)]


def violations_on(html: str) -> set[str]:
    return set(re.findall(r'data-violation="([a-z_]+:[0-9]+)"', html))


def test_a_north_operator_reads_only_norths_messages(plant) -> None:
    north, north2, south = plant["north"], plant["north2"], plant["south"]
    only_north = message([("ppe", north, 2)], minutes_ago=5)
    only_south = message([("ppe", south, 7)], contact="south-desk", minutes_ago=4)
    # One message of a rule that covers both sites: nora sees it with North's violation only.
    both = message([("ppe", north2, 3), ("ppe", south, 7)], step=1, minutes_ago=3)
    no_camera = message([("human", plant["none"], None)], minutes_ago=2)
    nora = client_for(plant["nora"])
    page = nora.get("/notifications/")
    assert page.status_code == 200
    html = page.content.decode()
    assert listed(html) == [key(both), key(only_north)]
    assert violations_on(html) == {
        f"violation_ppedetections:{north}",
        f"violation_ppedetections:{north2}",
    }
    assert "/m/s7.jpg" not in html and "south-desk" not in html
    assert f'href="/violations/ppe/{north}/">#{north}</a>' in html
    assert "camera 2" in html and "/m/n2.jpg" in html
    assert "escalation 1" in html and "first message" in html
    # Contacts by name, never by URL (it may hold a secret).
    assert "safety-team" in html and "s3cr3t" not in html
    everything = client_for(plant["root"]).get("/notifications/").content.decode()
    assert listed(everything) == [key(no_camera), key(both), key(only_south), key(only_north)]
    assert f"violation_ppedetections:{south}" in violations_on(everything)

    # The detail of a North violation lists its own messages; a South one is not hers.
    detail = nora.get(f"/violations/ppe/{north2}/").content.decode()
    assert "<h2>Messages</h2>" in detail
    section = detail.split('id="notifications"')[1]
    assert (
        "To <strong>safety-team</strong> by the rule <strong>ppe-everywhere</strong>, escalation 1"
        in section
    )
    assert "sent" in section
    assert nora.get(f"/violations/ppe/{south}/").status_code == 404
    quiet = nora.get(f"/violations/ppe/{north}/").content.decode()
    assert quiet.count("<li data-status=") == 1
    dialog = nora.get(f"/violations/ppe/{north2}/", HTTP_HX_REQUEST="true")
    assert 'id="notifications"' in dialog.content.decode()  # the live table's dialog too


def test_without_the_permission_no_page_no_section_no_link(plant) -> None:
    message([("ppe", plant["north"], 2)], status=Notification.FAILED, attempts=3)
    paul = client_for(plant["paul"])
    assert paul.get("/notifications/").status_code == 403
    rows = Notification.objects.all()
    assert paul.post(f"/notifications/{rows[0].id}/resend/").status_code == 403
    assert set(rows.values_list("status", flat=True)) == {Notification.FAILED}
    detail = paul.get(f"/violations/ppe/{plant['north']}/").content.decode()
    assert "Messages" not in detail and "safety-team" not in detail
    assert 'id="notifications-link"' not in paul.get("/").content.decode()
    assert 'id="notifications-link" href="/notifications/"' in (
        client_for(plant["nora"]).get("/").content.decode()
    )
    anonymous = Client().get("/notifications/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_failures_first_then_the_newest(plant) -> None:
    north = plant["north"]
    old_failure = message(
        [("ppe", north, 2)],
        status=Notification.FAILED,
        minutes_ago=90,
        attempts=5,
        last_error=f"connection refused by {SECRET_URL}",
    )
    newest = message([("ppe", north, 2)], minutes_ago=1, step=2)
    retrying = message(
        [("ppe", north, 2)],
        status=Notification.PENDING,
        batched=False,
        minutes_ago=10,
        step=1,
        attempts=2,
        last_error="timed out",
    )
    cancelled = message(
        [("ppe", north, 2)],
        status=Notification.CANCELLED,
        batched=False,
        minutes_ago=20,
        step=3,
        cancelled_because="acknowledged",
    )
    html = client_for(plant["nora"]).get("/notifications/").content.decode()
    assert listed(html) == [key(old_failure), key(newest), key(retrying), key(cancelled)]
    failed = html.split(f'id="message-{key(old_failure)}"')[1].split("</li>")[0]
    assert "after 5 attempts" in failed and "connection refused by &lt;safety-team&gt;" in failed
    assert "s3cr3t" not in html
    assert "retrying" in html and "2 attempts so far" in html and "timed out" in html
    assert "acknowledged" in html
    # Resend only where it was a failure.
    assert html.count('class="message-resend"') == 1
    assert f'action="/notifications/{key(old_failure)}/resend/"' in html


def test_resend_hands_a_failed_message_back_to_the_worker(plant) -> None:
    rows = message(
        [("ppe", plant["north"], 2), ("ppe", plant["north2"], 3)],
        status=Notification.FAILED,
        attempts=6,
        last_error="HTTP 503",
    )
    Notification.objects.filter(id__in=[r.id for r in rows]).update(
        next_attempt_at=rows[0].decided_at
    )
    nora = client_for(plant["nora"], enforce_csrf_checks=True)
    page = nora.get("/notifications/?page=1")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    url = f"/notifications/{key(rows)}/resend/"
    assert nora.post(url).status_code == 403  # no CSRF token
    answer = nora.post(url, {"csrfmiddlewaretoken": token[1], "next": "/notifications/?page=1"})
    assert answer.status_code == 303 and answer["Location"] == "/notifications/?page=1"
    after = list(Notification.objects.order_by("id"))
    assert [(r.status, r.attempts, r.next_attempt_at, r.batch, r.last_error) for r in after] == [
        (Notification.PENDING, 0, None, key(rows), "HTTP 503")
    ] * 2
    shown = nora.get(answer["Location"]).content.decode()
    assert f"Message {key(rows)} will be sent again." in shown
    assert 'class="message-resend"' not in shown
    # Anything else is refused, and nothing changes.
    again = nora.post(url, {"csrfmiddlewaretoken": token[1]})
    assert again.status_code == 400
    assert "Only a failed message can be sent again" in again.content.decode()
    # Back only to this page, never elsewhere.
    other = message([("ppe", plant["north"], 2)], status=Notification.FAILED, step=1)
    evil = nora.post(
        f"/notifications/{key(other)}/resend/",
        {"csrfmiddlewaretoken": token[1], "next": "https://evil.example/notifications/"},
    )
    assert evil.status_code == 303 and evil["Location"] == "/notifications/"


def test_what_resend_refuses(plant) -> None:
    nora = client_for(plant["nora"])
    sent = message([("ppe", plant["north"], 2)])
    answer = nora.post(f"/notifications/{key(sent)}/resend/")
    assert answer.status_code == 400
    assert f"message {key(sent)} is sent" in answer.content.decode()
    south = message([("ppe", plant["south"], 7)], status=Notification.FAILED)
    assert nora.post(f"/notifications/{key(south)}/resend/").status_code == 404  # not hers
    assert client_for(plant["root"]).post(f"/notifications/{key(south)}/resend/").status_code == 303
    for missing in ("0", "987654", "9" * 30):
        assert nora.post(f"/notifications/{missing}/resend/").status_code == 404, missing
    assert nora.get(f"/notifications/{key(sent)}/resend/").status_code == 405
    assert Notification.objects.get(id=key(sent)).status == Notification.SENT


def test_pages_of_fifty(plant) -> None:
    for n in range(51):
        message([("ppe", plant["north"], 2)], step=n + 1, minutes_ago=n + 1)
    nora = client_for(plant["nora"])
    first = nora.get("/notifications/").content.decode()
    assert len(listed(first)) == 50 and 'href="/notifications/?page=2"' in first
    second = nora.get("/notifications/?page=2").content.decode()
    assert len(listed(second)) == 1 and "escalation 51" in second
    assert 'id="older-page"' not in second and 'rel="prev" href="/notifications/"' in second
    assert "No more messages." in nora.get("/notifications/?page=3").content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=0",
        "page=-1",
        "page=1e3",
        "page=" + "9" * 40,
        "page=10001",
        "page=%00",
        "page=%F0%9F%92%A5",
        "page[]=1",
        "page=1&page=abc",
        "page=%27%20OR%201%3D1--",
        "x=" + "a" * 5000,
    ],
)
def test_hostile_query_strings(plant, query: str) -> None:
    message([("ppe", plant["north"], 2)], status=Notification.FAILED)
    answer = client_for(plant["nora"]).get("/notifications/?" + query)
    assert answer.status_code in (200, 400), answer.status_code
    if answer.status_code == 400:
        assert answer.content.decode().startswith("Bad page: page must be")
