"""Kinds are configuration: `add_kind` checks a table before it watches it, and undoes it."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.test import Client

from realtime.models import ViolationKind
from realtime.violations import kinds
from tests.helpers import run_manage

pytestmark = pytest.mark.django_db(transaction=True)

FIRE = """
CREATE TABLE IF NOT EXISTS violation_firedetections (
    id serial PRIMARY KEY, camera_id int, violation_date date, violation_time time(0),
    violation_image text, temperature real
)
"""


@pytest.fixture
def fire_table(pg: Any) -> Any:
    pg.execute(FIRE)
    yield "violation_firedetections"
    pg.execute("DROP TABLE IF EXISTS violation_firedetections")


def triggers(pg: Any, table: str) -> set[str]:
    rows = pg.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass", [table])
    return {row[0] for row in rows.fetchall()}


def add_kind(*args: str) -> str:
    out = io.StringIO()
    call_command("add_kind", *args, stdout=out)
    return out.getvalue()


def test_add_kind_watches_the_table_and_remove_undoes_it(pg, fire_table, operator_client) -> None:
    add_kind("fire", fire_table, "--label", "Fire", "--colour", "#d9480f")
    kind = ViolationKind.objects.get(slug="fire")
    assert (kind.label, kind.schema_name, kind.table_name, kind.colour) == (
        "Fire",
        "public",
        fire_table,
        "#d9480f",
    )
    assert kind.position > ViolationKind.objects.get(slug="ppe").position, "last on the page"
    assert triggers(pg, fire_table) == {
        "realtime_notify_v5_insert",
        "realtime_notify_v5_update",
        "realtime_notify_v5_delete",
    }
    assert operator_client.get("/?kind=fire").status_code == 200
    assert (
        ".kind-fire .kind-badge { background: #d9480f; }"
        in operator_client.get("/kinds.css").content.decode()
    )

    add_kind("--remove", "fire")
    kinds.forget()
    assert not ViolationKind.objects.filter(slug="fire").exists()
    assert triggers(pg, fire_table) == set()
    assert operator_client.get("/?kind=fire").status_code == 400


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fire"], "Name the table"),
        (["fire", "no_such_table"], "There is no table 'no_such_table'."),
        (["Fire!", "violation_firedetections"], "short lower-case name"),
        (["fire", "violation_firedetections", "--colour", "red"], "--colour is a colour"),
        (["ppe", "violation_firedetections"], "There is a kind 'ppe' already."),
        (["--remove", "nope"], "There is no kind 'nope'."),
    ],
)
def test_add_kind_refuses_with_a_message(fire_table, args, message) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        add_kind(*args)


def test_add_kind_names_the_missing_column(pg) -> None:
    pg.execute(
        "CREATE TABLE violation_smoke (id serial PRIMARY KEY, camera_id int, violation_date date)"
    )
    try:
        with pytest.raises(CommandError) as refused:
            add_kind("smoke", "violation_smoke")
        assert '"public"."violation_smoke" has no column violation_time.' in str(refused.value)
        assert '"public"."violation_smoke" has no column violation_image.' in str(refused.value)
        assert triggers(pg, "violation_smoke") == set(), "nothing attached"
    finally:
        pg.execute("DROP TABLE violation_smoke")


def test_two_kinds_cannot_share_a_table_name_in_two_schemas(pg) -> None:
    # The event log names a table without its schema.
    pg.execute("CREATE SCHEMA IF NOT EXISTS plant2")
    pg.execute(
        "CREATE TABLE plant2.violation_ppedetections (id serial PRIMARY KEY, camera_id int,"
        " violation_date date, violation_time time, violation_image text)"
    )
    try:
        with pytest.raises(CommandError, match="shows a table named violation_ppedetections"):
            add_kind("ppe2", "plant2.violation_ppedetections")
    finally:
        pg.execute("DROP SCHEMA plant2 CASCADE")


def test_check_reports_a_kind_whose_table_is_gone(pg, fire_table) -> None:
    add_kind("fire", fire_table)
    pg.execute("DROP TABLE violation_firedetections")
    out = io.StringIO()
    with pytest.raises(
        SystemCheckError, match=re.escape("The table of the kind 'fire' does not exist")
    ):
        call_command("check", stderr=out, stdout=out)
    add_kind("--remove", "fire")


@pytest.fixture
def operator_client() -> Client:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("kinds-operator", password="a-long-password-1")
    client = Client()
    client.force_login(user)
    return client


def test_labels_colours_and_order_are_edited_in_the_admin(operator_client) -> None:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("kinds-admin", "a@example.com", "pw-long-1x")
    client = Client()
    client.force_login(admin)
    ppe = ViolationKind.objects.get(slug="ppe")
    response = client.post(
        f"/admin/realtime/violationkind/{ppe.pk}/change/",
        {"label": "Missing PPE", "colour": "#123456", "position": "1"},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert (
        client.post(
            f"/admin/realtime/violationkind/{ppe.pk}/change/",
            {"label": "x", "colour": "red", "position": "1"},
        ).status_code
        == 200
    ), "a bad colour is refused on the form"
    kinds.forget()
    page = operator_client.get("/").content.decode()
    assert "Missing PPE" in page
    assert page.index('data-kind="ppe"') < page.index('data-kind="human"'), "first now"
    assert "background: #123456" in operator_client.get("/kinds.css").content.decode()
    # Adding or removing a kind attaches or drops a trigger: that is add_kind's job.
    assert client.get("/admin/realtime/violationkind/add/").status_code == 403
    assert client.get(f"/admin/realtime/violationkind/{ppe.pk}/delete/").status_code == 403


def test_the_violations_admin_is_read_only(pg) -> None:
    from django.contrib.auth import get_user_model

    from tests.helpers import insert_violation

    row_id = insert_violation(pg, "violation_ppedetections", image="/media/admin-ro.jpg")
    admin = get_user_model().objects.create_superuser("ro-admin", "r@example.com", "pw-long-1x")
    client = Client()
    client.force_login(admin)
    changelist = client.get("/admin/realtime/ppedetection/")
    assert changelist.status_code == 200 and "/media/admin-ro.jpg" in changelist.content.decode()
    assert client.get("/admin/realtime/ppedetection/add/").status_code == 403
    change = client.post(f"/admin/realtime/ppedetection/{row_id}/change/", {"camera_id": "99"})
    assert change.status_code == 403
    assert (
        client.post(f"/admin/realtime/ppedetection/{row_id}/delete/", {"post": "yes"}).status_code
        == 403
    )
    camera = pg.execute("SELECT camera_id FROM violation_ppedetections WHERE id = %s", [row_id])
    assert camera.fetchone() == (1,)


@pytest.mark.parametrize(
    ("sound", "message"),
    [
        ("../config/settings.py", "A sound file under static/"),
        ("/etc/passwd.wav", "A sound file under static/"),
        ("realtime/../audio.wav", "A sound file under static/"),
        ("realtime/live.js", "A sound file under static/"),
        ("realtime/sounds/missing.wav", "There is no static file realtime/sounds/missing.wav."),
    ],
)
def test_a_kinds_sound_is_a_static_sound_file_that_exists(sound: str, message: str) -> None:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("sound-admin", "s@example.com", "pw-long-1x")
    client = Client()
    client.force_login(admin)
    loto = ViolationKind.objects.get(slug="loto")
    form = {"label": loto.label, "colour": loto.colour, "position": "20", "sound": sound}
    refused = client.post(f"/admin/realtime/violationkind/{loto.pk}/change/", form)
    assert refused.status_code == 200 and message in refused.content.decode()
    loto.refresh_from_db()
    assert loto.sound == ""
    form["sound"] = "realtime/sounds/two-tone.wav"
    assert client.post(f"/admin/realtime/violationkind/{loto.pk}/change/", form).status_code == 302
    loto.refresh_from_db()
    assert loto.sound == "realtime/sounds/two-tone.wav"


def test_a_kind_whose_table_is_gone_leaves_every_page_to_the_other_kinds(
    pg, fire_table, operator_client
) -> None:
    """The detectors' team dropped a table the product shows (or a kind was removed and
    its table dropped while another process still had the kind): the pages show the other
    kinds, never a 500. `check` says what is wrong (the test above)."""
    add_kind("fire", fire_table)
    pg.execute(
        "INSERT INTO violation_ppedetections (camera_id, violation_date, violation_time,"
        " violation_image) VALUES (4, CURRENT_DATE, LOCALTIME(0), '/media/still-here.jpg')"
    )
    assert operator_client.get("/").status_code == 200  # the kinds are cached now
    pg.execute("DROP TABLE violation_firedetections")
    for path in ("/", "/rows/", "/counters/", "/trend/", "/history/", "/history/export.csv"):
        response = operator_client.get(path)
        assert response.status_code == 200, path
        body = b"".join(response) if response.streaming else response.content
        assert b"still-here.jpg" in body or path in ("/counters/", "/trend/"), path
    pg.execute(FIRE)
    add_kind("--remove", "fire")


@pytest.mark.parametrize(
    "name", ["x; DROP TABLE y", "a.b.c.d", "otherdb.public.violation_ppedetections", '"open']
)
def test_add_kind_of_a_table_name_that_is_no_name_says_so_without_a_traceback(
    database_url, pg, name
) -> None:
    refused = run_manage(database_url, "add_kind", "fire", name)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert f"{name!r} is not a table name" in refused.stderr, refused.stderr
    assert not ViolationKind.objects.filter(slug="fire").exists()
