"""Who sees what (#16): sites group cameras, users and groups are given sites, and every
page, fragment, action and export of this process obeys it. The streams are in
tests/test_sites_live.py (a real Daphne, Redis and listener)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from realtime.access import scopes
from realtime.models import ApiToken, Shelf, Site
from tests.helpers import insert_violation

pytestmark = pytest.mark.django_db(transaction=True)


def sites(*args: str) -> str:
    out = io.StringIO()
    call_command("sites", *args, stdout=out)
    scopes.forget()
    return out.getvalue()


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def plants(pg: Any) -> dict[str, Any]:
    """North (cameras 1-3) for alice, South (4-6) for bob through his group, camera 9 in no
    site; a row of each camera's, and a superuser and an auditor who see everything."""
    users = get_user_model().objects
    made: dict[str, Any] = {
        "alice": users.create_user("alice", password="a-long-password-1"),
        "bob": users.create_user("bob", password="a-long-password-1"),
        "root": users.create_superuser("root", "r@example.com", "a-long-password-1"),
        "auditor": users.create_user("auditor", password="a-long-password-1"),
    }
    made["auditor"].user_permissions.add(Permission.objects.get(codename="view_all_sites"))
    Group.objects.create(name="south-operators").user_set.add(made["bob"])
    sites("set", "North", "--cameras", "1-3")
    sites("set", "South", "--cameras", "4,5,6")
    sites("grant", "North", "alice")
    sites("grant", "South", "--group", "south-operators")
    made["rows"] = {
        camera: insert_violation(
            pg, "violation_ppedetections", camera_id=camera, image=f"/media/cam{camera}.jpg"
        )
        for camera in (1, 2, 4, 5, 9)
    }
    return made


def images(html: str) -> set[int]:
    return {camera for camera in (1, 2, 4, 5, 9) if f"/media/cam{camera}.jpg" in html}


def test_the_sites_command(plants) -> None:
    listed = sites("list")
    assert "North\tcameras 1-3\tgiven to alice" in listed
    assert "South\tcameras 4-6\tgiven to group south-operators" in listed
    assert "Updated the site North: cameras 1-3,7." in sites("set", "North", "--cameras", "1-3,7")
    assert sites("revoke", "North", "alice") == "Took the site North from alice.\n"
    for args, message in [
        (("grant", "Nowhere", "alice"), "There is no site 'Nowhere'"),
        (("grant", "North", "nobody"), "There is no user 'nobody'"),
        (("grant", "North", "--group", "nogroup"), "There is no group 'nogroup'"),
        (("grant", "North"), "Name a user or a --group"),
        (("grant", "North", "alice", "--group", "south-operators"), "Name a user or a --group"),
        (("set", "West", "--cameras", "1-x"), "--cameras: not a camera"),
        (("delete", "West"), "There is no site 'West'"),
    ]:
        with pytest.raises(CommandError, match=message):
            sites(*args)
    assert sites("delete", "North") == "Deleted the site North.\n"


def test_while_no_site_exists_everyone_sees_everything(pg) -> None:
    user = get_user_model().objects.create_user("carl", password="a-long-password-1")
    row = insert_violation(pg, "violation_ppedetections", camera_id=77, image="/media/cam77.jpg")
    page = client_for(user).get("/").content.decode()
    assert "/media/cam77.jpg" in page
    assert client_for(user).get(f"/violations/ppe/{row}/").status_code == 200
    assert "No sites: everyone who may log in sees every violation." in sites("list")


def test_each_user_sees_their_sites_cameras_on_every_page(plants) -> None:
    alice, bob = client_for(plants["alice"]), client_for(plants["bob"])
    for who, client, mine in (("alice", alice, {1, 2}), ("bob", bob, {4, 5})):
        assert images(client.get("/").content.decode()) == mine, who
        assert images(client.get("/rows/").content.decode()) == mine, who  # Load older
        assert images(client.get("/history/").content.decode()) == mine, who
        export = b"".join(client.get("/history/export.csv")).decode()
        assert images(export) == mine, who
        counters = client.get("/counters/").content.decode()
        assert f'<span class="count" data-kind="ppe">{len(mine)}</span>' in counters, who
        trend = client.get("/trend/").content.decode()
        assert f'<span class="trend-count">{len(mine)}</span> in all' in trend, who
    for everything in ("root", "auditor"):
        page = client_for(plants[everything]).get("/").content.decode()
        assert images(page) == {1, 2, 4, 5, 9}, f"{everything} sees every site and camera 9"


def test_a_violation_of_another_site_is_a_404_and_changes_nothing(plants, pg) -> None:
    alice = client_for(plants["alice"])
    south = plants["rows"][4]
    for path in (
        f"/violations/ppe/{south}/",
        f"/violations/ppe/{south}/image/",
        f"/violations/ppe/{south}/thumbnail/",
    ):
        assert alice.get(path).status_code == 404, path
    assert alice.post(f"/violations/ppe/{south}/acknowledge/").status_code == 404
    assert alice.post(f"/violations/ppe/{south}/note/", {"text": "mine now"}).status_code == 404
    mine = plants["rows"][1]
    both = alice.post("/violations/acknowledge/", {"violation": [f"ppe:{mine}", f"ppe:{south}"]})
    assert both.status_code == 200 and both.content.decode().count('class="violation') == 1
    acknowledged = pg.execute("SELECT violation_id FROM realtime_acknowledgement").fetchall()
    assert acknowledged == [(mine,)], "only her own"
    assert alice.get(f"/violations/ppe/{mine}/").status_code == 200
    # Shelving: only her cameras, and she sees only her cameras' shelves.
    assert alice.post("/shelves/", {"camera": "4", "minutes": "15"}).status_code == 404
    assert alice.post("/shelves/", {"camera": "9", "minutes": "15"}).status_code == 404
    assert alice.post("/shelves/", {"camera": "2", "minutes": "15"}).status_code == 200
    bob = client_for(plants["bob"])
    assert bob.post("/shelves/", {"camera": "5", "minutes": "15"}).status_code == 200
    assert "Camera 5" not in alice.get("/shelves/").content.decode()
    assert "Camera 2" in alice.get("/shelves/").content.decode()
    north_shelf = Shelf.objects.get(camera_id=2)
    assert bob.post(f"/shelves/{north_shelf.pk}/end/").status_code == 404
    north_shelf.refresh_from_db()
    assert north_shelf.ended_at is None


def test_a_token_acts_with_its_users_scope(plants) -> None:
    token = ApiToken.issue(plants["bob"])
    export = b"".join(
        Client().get("/history/export.csv", headers={"Authorization": f"Bearer {token}"})
    )
    assert images(export.decode()) == {4, 5}


def test_the_admin_changelist_shows_a_staff_members_sites_only(plants) -> None:
    staff = plants["alice"]
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_ppedetection"))
    admin = client_for(staff)
    listed = admin.get("/admin/realtime/ppedetection/").content.decode()
    assert images(listed) == {1, 2}
    south = plants["rows"][4]
    assert admin.get(f"/admin/realtime/ppedetection/{south}/change/").status_code == 404


def test_sites_are_edited_in_the_admin_with_ranges(plants) -> None:
    root = client_for(plants["root"])
    north = Site.objects.get(name="North")
    form = {"name": "North", "camera_list": "1-3, 10-12", "users": [plants["alice"].pk]}
    assert root.post(f"/admin/realtime/site/{north.pk}/change/", form).status_code == 302
    north.refresh_from_db()
    assert north.cameras == [1, 2, 3, 10, 11, 12]
    form["camera_list"] = "10-1"
    refused = root.post(f"/admin/realtime/site/{north.pk}/change/", form)
    assert refused.status_code == 200 and "not a range of cameras" in refused.content.decode()
    assert "1-3,10-12" in root.get("/admin/realtime/site/").content.decode()
