"""Alerts for people who are not at the screen (issue 25): the real listener, server and
worker (`manage.py notify`), a real SMTP server (aiosmtpd) and a real HTTP receiver (an
Apprise json:// contact). Rules are written to the tables as the admin or a load would.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from tests.alerting import wait_until
from tests.helpers import ROOT, insert_violation

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def rule(
    name: str, contacts: list[Any], steps: tuple[tuple[int, list[Any]], ...] = (), **fields: Any
) -> Any:
    """A rule, in one transaction as the admin and a load write one (a worker never reads
    half of it)."""
    from django.db import transaction

    from realtime.models import EscalationStep, Rule

    sites = fields.pop("sites", [])
    with transaction.atomic():
        made = Rule.objects.create(name=name, **fields)
        made.notify.set(contacts)
        made.sites.set(sites)
        for after_seconds, notify in steps:
            step = EscalationStep.objects.create(rule=made, after_seconds=after_seconds)
            step.notify.set(notify)
    return made


def violation(pg: Any, table: str, camera: int, image: str) -> int:
    return insert_violation(pg, table, camera_id=camera, image=image)


def found(pattern: str, text: str, group: int = 0) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in {text!r}"
    return match[group]


def status_becomes(expected: str, **row: Any) -> None:
    """The outbox row's status becomes `expected` (the worker records it after the hand-over)."""
    from realtime.models import Notification

    wait_until(lambda: Notification.objects.get(**row).status == expected, 10, f"{row}: {expected}")


def statuses(**filters: Any) -> Counter[str]:
    from realtime.models import Notification

    return Counter(Notification.objects.filter(**filters).values_list("status", flat=True))


def test_a_rule_for_one_kind_and_site_mails_each_violation_it_covers_and_no_other(
    alerts, plant, smtp, pg
) -> None:
    rule("ppe-north", [plant["safety"]], kinds=["ppe"], sites=[plant["north"]])
    covered = [
        violation(pg, "violation_ppedetections", camera, f"/media/north-{camera}.jpg")
        for camera in (3, 4)
    ]
    violation(pg, "violation_ppedetections", 8, "/media/south-8.jpg")  # another site
    violation(pg, "violation_humandetections", 3, "/media/human-3.jpg")  # another kind
    mails = wait_until(lambda: len(smtp.received()) >= 2 and smtp.received(), 15, "two mails")
    time.sleep(2)  # and no more
    assert len(smtp.received()) == 2
    for mail, (row, camera) in zip(mails, zip(covered, (3, 4), strict=True), strict=True):
        assert mail.to == ["safety@plant.test"]
        assert mail.subject == f"PPE, camera {camera} (North)"
        assert f"/media/north-{camera}.jpg" in mail.body
        assert f"{alerts.public_url}/violations/ppe/{row}/" in mail.body
        assert re.fullmatch(r"<alert-\d+@127\.0\.0\.1>", mail.message["Message-ID"])
    assert "south" not in "".join(m.body for m in mails)
    assert statuses() == Counter({"sent": 2})


def test_twenty_violations_in_five_seconds_are_one_message_with_the_count(
    alerts, plant, receiver, pg
) -> None:
    from realtime.models import Contact

    hook = Contact.objects.create(name="supervisor", url=receiver.url)
    rule("consolidated", [hook], consolidate_seconds=30)
    started = time.monotonic()
    for n in range(20):
        violation(pg, "violation_humandetections", 1 + n % 5, f"/media/burst-{n}.jpg")
        time.sleep(0.25)
    [post] = wait_until(receiver.received, 45, "the consolidated message")
    assert time.monotonic() - started >= 29, "sent before its window was over"
    assert post.body["title"] == "20 violations (consolidated)"
    assert post.body["message"].count("Open and acknowledge: ") == 5
    assert "…and 15 more." in post.body["message"]
    assert post.headers["Idempotency-Key"].isdigit()
    time.sleep(2)
    assert len(receiver.received()) == 1
    assert statuses() == Counter({"sent": 20})


def test_an_unacknowledged_violation_escalates_and_an_acknowledged_one_does_not(
    alerts, plant, smtp, receiver, pg
) -> None:
    from realtime.models import Acknowledgement, Contact, Notification

    hook = Contact.objects.create(name="supervisor", url=receiver.url)
    rule("escalating", [plant["safety"]], steps=((4, [hook]),), kinds=["human"])
    ignored = violation(pg, "violation_humandetections", 2, "/media/ignored.jpg")
    handled = violation(pg, "violation_humandetections", 3, "/media/handled.jpg")
    wait_until(lambda: len(smtp.received()) >= 2, 15, "the first messages")
    # Acknowledged (as the console does) before its step is due: the step is cancelled.
    from django.utils import timezone

    Acknowledgement.objects.create(
        table_name="violation_humandetections",
        violation_id=handled,
        acknowledged_by="anna",
        acknowledged_at=timezone.now(),
    )
    [post] = wait_until(receiver.received, 20, "the escalation")
    assert post.body["title"].startswith("Still unacknowledged: Person in zone, camera 2")
    assert "/media/ignored.jpg" in post.body["message"]
    time.sleep(2)
    assert len(receiver.received()) == 1
    step = Notification.objects.get(step=1, violation_id=handled)
    assert (step.status, step.cancelled_because) == ("cancelled", "acknowledged")
    status_becomes("sent", step=1, violation_id=ignored)


def test_a_shelved_cameras_violation_notifies_nobody(alerts, plant, smtp, pg) -> None:
    from realtime.models import Notification

    rule("everything", [plant["safety"]])
    pg.execute(
        "INSERT INTO realtime_shelf (camera_id, shelved_by, shelved_at, until, time_zone,"
        " reason, ended_by) VALUES (7, 'anna', now() - interval '1 minute',"
        " now() + interval '1 hour', current_setting('TimeZone'), 'maintenance', '')"
    )
    shelved = violation(pg, "violation_lotodetections", 7, "/media/shelved.jpg")
    other = violation(pg, "violation_lotodetections", 6, "/media/not-shelved.jpg")
    [mail] = wait_until(smtp.received, 15, "the other camera's mail")
    assert "/media/not-shelved.jpg" in mail.body
    time.sleep(2)
    assert len(smtp.received()) == 1
    row = Notification.objects.get(violation_id=shelved)
    assert (row.status, row.cancelled_because) == ("cancelled", "camera shelved")
    status_becomes("sent", violation_id=other)


# What the killed worker had claimed is sent once its lease (60 s) runs out: the wait is
# longer than that, and the suite's 120 s per test longer still.
@pytest.mark.timeout(300)
def test_a_worker_killed_mid_burst_loses_nothing_and_sends_nothing_twice(
    alerts, plant, receiver, pg
) -> None:
    from realtime.alerts import outbox
    from realtime.models import Contact

    hook = Contact.objects.create(name="hook", url=receiver.url)
    rule("each", [hook])
    rows = []
    for n in range(60):
        rows.append(violation(pg, "violation_ppedetections", 1 + n % 10, f"/media/kill-{n}.jpg"))
        if n == 20:
            alerts.workers[0].stop(signal.SIGKILL)
        if n == 40:
            alerts.start_worker()
    posts = wait_until(
        lambda: (
            len({p.headers["Idempotency-Key"] for p in receiver.received()}) >= 60
            and receiver.received()
        ),
        outbox.LEASE.total_seconds() + 60,
        "a message per violation",
    )
    time.sleep(2)
    posts = receiver.received()
    keys = Counter(p.headers["Idempotency-Key"] for p in posts)
    assert len(keys) == 60, "a message per violation, each with its own id"
    # A repeat (the worker died between sending and recording) carries the first's id.
    named = Counter(found(r"/media/kill-\d+\.jpg", p.body["message"]) for p in posts)
    assert len(named) == 60
    for post in posts:
        image = found(r"/media/kill-\d+\.jpg", post.body["message"])
        assert [p.headers["Idempotency-Key"] for p in posts if image in p.body["message"]] == [
            post.headers["Idempotency-Key"]
        ] * named[image]
    assert statuses() == Counter({"sent": 60})


def test_a_receiver_down_for_20_s_gets_its_message_when_it_is_back(
    alerts, plant, receiver, pg
) -> None:
    from realtime.models import Contact, Notification

    hook = Contact.objects.create(name="hook", url=receiver.url)
    rule("each", [hook])
    receiver.down()
    row = violation(pg, "violation_humandetections", 4, "/media/while-down.jpg")
    wait_until(
        lambda: Notification.objects.filter(violation_id=row, attempts__gte=2).exists(),
        20,
        "tried and retried",
    )
    pending = Notification.objects.get(violation_id=row)
    assert pending.status in ("pending", "sending") and pending.last_error
    time.sleep(max(0.0, 20 - (time.time() - pending.decided_at.timestamp())))
    receiver.up()
    [post] = wait_until(receiver.received, 45, "the message after the receiver's return")
    assert "/media/while-down.jpg" in post.body["message"]
    status_becomes("sent", violation_id=row)


def test_one_click_on_the_messages_link_after_login_acknowledges_and_stops_escalation(
    alerts, plant, smtp, receiver, pg, browser
) -> None:
    from playwright.sync_api import expect

    from realtime.models import Acknowledgement, Contact, Notification
    from tests import browsing

    hook = Contact.objects.create(name="supervisor", url=receiver.url)
    rule("escalating", [plant["safety"]], steps=((8, [hook]),), kinds=["human"])
    plant["north"].users.add(browsing.browser_user("anna"))  # camera 2 is North's
    row = violation(pg, "violation_humandetections", 2, "/media/from-the-mail.jpg")
    [mail] = wait_until(smtp.received, 15, "the first message")
    link = found(r"Open and acknowledge: (\S+)", mail.body, 1)
    assert link == f"{alerts.public_url}/violations/human/{row}/"
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    try:
        # The link alone opens nothing (a forwarded e-mail): the login first, then the page.
        page.goto(link)
        assert "/accounts/login/" in page.url
        page.fill("#id_username", "anna")
        page.fill("#id_password", browsing.PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(link)
        page.locator(".detail-acknowledge").get_by_role("button", name="Acknowledge").click()
        expect(page.locator("#acknowledgement")).to_contain_text("Acknowledged by anna")
        page.screenshot(path=browsing.SCREENSHOTS / "alert-link-acknowledged.png")
    finally:
        context.close()
    assert Acknowledgement.objects.get(violation_id=row).acknowledged_by == "anna"
    step = wait_until(
        lambda: Notification.objects.filter(step=1, status="cancelled").first(), 15, "cancelled"
    )
    assert step.cancelled_because == "acknowledged"
    time.sleep(max(0.0, 10 - (time.time() - step.decided_at.timestamp())))
    assert receiver.received() == [], "the escalation was sent after the acknowledgement"


def test_a_loaded_file_reaches_the_running_worker_within_5_s(
    alerts, plant, smtp, receiver, pg, tmp_path
) -> None:
    # The worker holds a rule already (so it is not reading the rules on every round).
    rule("camera-one", [plant["safety"]], cameras=[1])
    violation(pg, "violation_lotodetections", 1, "/media/before-the-load.jpg")
    wait_until(smtp.received, 10, "the first rule's mail")
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        f"""
[contacts.hook]
url = "{receiver.url}"

[[rules]]
name = "loto-south"
kinds = ["loto"]
sites = ["South"]
notify = ["hook"]
"""
    )
    loaded = subprocess.run(
        [sys.executable, "manage.py", "notifications", "load", str(rules)],
        env=alerts.stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    time.sleep(5)  # the worker was running all along: no restart
    row = violation(pg, "violation_lotodetections", 9, "/media/after-the-load.jpg")
    [post] = wait_until(receiver.received, 10, "the loaded rule's message")
    assert post.body["title"] == "LOTO, camera 9 (South)"
    assert f"/violations/loto/{row}/" in post.body["message"]


def test_when_unwatched_escalates_at_once_unless_a_live_table_of_the_site_is_open(
    alerts, plant, smtp, receiver, pg, browser
) -> None:
    from playwright.sync_api import expect

    from realtime.alerts import presence
    from realtime.models import Contact, Notification
    from tests import browsing

    hook = Contact.objects.create(name="supervisor", url=receiver.url)
    rule(
        "zones",
        [plant["safety"]],
        steps=((600, [hook]),),
        kinds=["human"],
        when_unwatched="escalate-now",
    )
    # Nobody has a live table open: the first escalation step goes at once.
    alone = violation(pg, "violation_humandetections", 2, "/media/nobody-watching.jpg")
    [post] = wait_until(receiver.received, 15, "the escalation sent at once")
    assert "/media/nobody-watching.jpg" in post.body["message"]
    status_becomes("sent", violation_id=alone, step=1)

    plant["north"].users.add(browsing.browser_user("anna"))
    context = browser.new_context()
    page = context.new_page()
    try:
        browsing.log_in(page, alerts.stack.http, "/", "anna", browsing.PASSWORD)
        expect(page.locator("#connection-state")).to_have_text("Live", timeout=20_000)
        wait_until(lambda: presence.is_watched(3), 15, "anna's table known as watched")
        watched = violation(pg, "violation_humandetections", 3, "/media/anna-watching.jpg")
        south = violation(pg, "violation_humandetections", 8, "/media/south-unwatched.jpg")
        wait_until(lambda: len(receiver.received()) >= 2, 15, "South's escalation")
        wait_until(lambda: len(smtp.received()) >= 3, 15, "the first messages")
        time.sleep(3)
    finally:
        context.close()
    posts = receiver.received()
    assert len(posts) == 2 and "/media/south-unwatched.jpg" in posts[1].body["message"]
    step = Notification.objects.get(violation_id=watched, step=1)
    assert step.status == "pending", "escalated although anna's table shows camera 3"
    assert 599 < (step.due_at - step.committed_at).total_seconds() < 601
    status_becomes("sent", violation_id=south, step=1)


def test_a_failed_message_resent_from_the_page_is_delivered(
    alerts, plant, receiver, pg, client_of
) -> None:
    from django.contrib.auth.models import Permission

    from realtime.models import Contact, Notification

    alerts.workers[0].stop()
    alerts.start_worker(REALTIME_ALERT_RETRY_FOR="3s")  # gives up soon
    hook = Contact.objects.create(name="hook", url=receiver.url)
    rule("each", [hook])
    receiver.down()
    row = violation(pg, "violation_humandetections", 4, "/media/failed-then-resent.jpg")
    failed = wait_until(
        lambda: Notification.objects.filter(violation_id=row, status="failed").first(),
        20,
        "the message failed",
    )
    receiver.up()
    time.sleep(3)
    assert receiver.received() == [], "a failed message is not retried by itself"
    from django.contrib.auth import get_user_model

    supervisor = client_of("supervisor")
    user = get_user_model().objects.get(username="supervisor")
    user.user_permissions.add(Permission.objects.get(codename="view_notifications"))
    plant["north"].users.add(user)  # camera 4 is North's
    answer = supervisor.post(f"/notifications/{failed.batch}/resend/")
    assert answer.status_code in (302, 303)
    [post] = wait_until(receiver.received, 15, "the resent message")
    assert "/media/failed-then-resent.jpg" in post.body["message"]
    assert post.headers["Idempotency-Key"] == str(failed.batch)
    status_becomes("sent", violation_id=row)


def test_two_workers_send_each_message_once(alerts, plant, receiver, pg) -> None:
    from realtime.models import Contact

    alerts.start_worker()  # beside the first
    hook = Contact.objects.create(name="hook", url=receiver.url)
    rule("each", [hook])
    for n in range(40):
        violation(pg, "violation_ppedetections", 1 + n % 10, f"/media/two-workers-{n}.jpg")
    wait_until(lambda: len(receiver.received()) >= 40, 30, "a message per violation")
    time.sleep(2)
    posts = receiver.received()
    assert len(posts) == 40, "a message sent by both workers"
    assert len({p.headers["Idempotency-Key"] for p in posts}) == 40
    senders = [w.log().count("alert message sent") for w in alerts.workers]
    assert sum(senders) == 40
    assert statuses() == Counter({"sent": 40})
