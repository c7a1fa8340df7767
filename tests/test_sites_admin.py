"""The admin obeys the sites (#22, finding 4): a staff member of North, with every view,
change and delete permission on the product's models, sees nothing of South in any admin
(lists, counts, filters, search, facets, detail, history) and changes nothing of it
(change, delete, the bulk "delete selected"). Sites, other users' tokens and the kinds
(what every site shares) are managed only by those who see every site."""

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
from realtime.models import Acknowledgement, ApiToken, OperatorAction, Shelf, Site, ViolationKind
from tests.helpers import insert_violation

pytestmark = pytest.mark.django_db(transaction=True)

# What only South's rows hold: none of it may reach a page of North's staff member.
SOUTH = ("south-secret", "south-operator", "violation_lotodetections", "/media/south.jpg")


def sites(*args: str) -> None:
    call_command("sites", *args, stdout=io.StringIO())
    scopes.forget()


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def product_permissions() -> list[Permission]:
    """Every view, change and delete permission on the product's models; not the one that
    lets its holder see every site."""
    return list(
        Permission.objects.filter(
            content_type__app_label="realtime", codename__regex=r"^(view|change|delete)_"
        ).exclude(codename="view_all_sites")
    )


@pytest.fixture
def plant(pg: Any) -> dict[str, Any]:
    """North (cameras 1-5) and South (6-10); North's staff member, an operator of each site
    who acknowledges, notes and shelves there, and a token of each."""
    users = get_user_model().objects
    made: dict[str, Any] = {
        "staff": users.create_user("north-staff", password="a-long-password-1", is_staff=True),
        "north": users.create_user("north-operator", password="a-long-password-1"),
        "south": users.create_user("south-operator", password="a-long-password-1"),
    }
    made["staff"].user_permissions.add(*product_permissions())
    sites("set", "North", "--cameras", "1-5")
    sites("set", "South", "--cameras", "6-10")
    for name in ("staff", "north"):
        sites("grant", "North", made[name].username)
    sites("grant", "South", "south-operator")
    made["north_row"] = insert_violation(
        pg, "violation_ppedetections", camera_id=2, image="/media/north.jpg"
    )
    made["south_row"] = insert_violation(
        pg, "violation_lotodetections", camera_id=7, image="/media/south.jpg"
    )
    north, south = client_for(made["north"]), client_for(made["south"])
    noted = north.post(f"/violations/ppe/{made['north_row']}/note/", {"text": "north-note"})
    assert noted.status_code == 200
    noted = south.post(f"/violations/loto/{made['south_row']}/note/", {"text": "south-secret"})
    assert noted.status_code == 200
    shelved = north.post("/shelves/", {"camera": "3", "minutes": "30", "reason": "north-reason"})
    assert shelved.status_code == 200
    shelved = south.post("/shelves/", {"camera": "8", "minutes": "30", "reason": "south-secret"})
    assert shelved.status_code == 200
    ApiToken.issue(made["staff"])
    ApiToken.issue(made["south"])
    made["admin"] = client_for(made["staff"])
    return made


def leaks(html: str) -> list[str]:
    return [mark for mark in SOUTH if mark in html]


def listed(client: Client, path: str) -> tuple[str, int]:
    """A changelist's page and the number of rows its paginator counts."""
    response = client.get(path)
    assert response.status_code == 200, path
    html = response.content.decode()
    count = re.search(r'<p class="paginator">\s*(\d+) ', html)
    assert count is not None, path
    return html, int(count.group(1))


def search_total(client: Client, path: str, term: str) -> tuple[int, int | None]:
    """A search's "N results (M total)" (M counts the whole changelist), or "N results (Show
    all)" where the admin does not count M."""
    html = client.get(f"{path}?q={term}").content.decode()
    found = re.search(r"(\d+) results? \(<a [^>]*>(?:(\d+) total|Show all)", html)
    assert found is not None, html[-2000:]
    return int(found.group(1)), None if found.group(2) is None else int(found.group(2))


def is_hidden(client: Client, path: str) -> None:
    """`path` answers as for an object that does not exist, and says nothing of it."""
    response = client.get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert leaks(response.content.decode()) == [], path


def test_acknowledgements_of_another_site_are_neither_shown_nor_deleted(plant) -> None:
    admin, path = plant["admin"], "/admin/realtime/acknowledgement/"
    html, count = listed(admin, path)
    assert "north-note" in html
    assert leaks(html) == [], "South's note, operator and table (a filter's choice)"
    assert count == 1
    assert leaks(admin.get(f"{path}?_facets=True").content.decode()) == []
    assert search_total(admin, path, "south-secret") == (0, None)
    mine = Acknowledgement.objects.get(table_name="violation_ppedetections")
    theirs = Acknowledgement.objects.get(table_name="violation_lotodetections")
    assert admin.get(f"{path}{mine.pk}/history/").status_code == 200
    for view in ("change", "history", "delete"):
        is_hidden(admin, f"{path}{theirs.pk}/{view}/")
    assert admin.post(f"{path}{theirs.pk}/delete/", {"post": "yes"}).status_code == 404
    assert admin.post(f"{path}{theirs.pk}/change/", {"note": "mine"}).status_code == 404
    bulk = {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"}
    admin.post(path, bulk)
    assert Acknowledgement.objects.filter(pk=theirs.pk).exists(), "the bulk delete skipped it"
    # The same action deletes her own site's: only the scope kept South's.
    admin.post(path, {**bulk, "_selected_action": [theirs.pk, mine.pk]})
    assert list(Acknowledgement.objects.values_list("pk", flat=True)) == [theirs.pk]
    theirs.refresh_from_db()
    assert theirs.note == "south-secret"


def test_operator_actions_of_another_site_are_not_shown(plant) -> None:
    admin, path = plant["admin"], "/admin/realtime/operatoraction/"
    html, count = listed(admin, path)
    assert "north-note" in html
    assert leaks(html) == [], "South's note, actor and table (a filter's choice)"
    assert count == 2, "North's acknowledgement and note"
    assert leaks(admin.get(f"{path}?_facets=True").content.decode()) == []
    assert search_total(admin, path, "south-secret") == (0, None)
    theirs = OperatorAction.objects.filter(table_name="violation_lotodetections")
    assert theirs.count() == 2
    for action in theirs:
        for view in ("change", "history", "delete"):
            is_hidden(admin, f"{path}{action.pk}/{view}/")
        assert admin.post(f"{path}{action.pk}/delete/", {"post": "yes"}).status_code == 404
    assert OperatorAction.objects.count() == 4


def test_shelves_of_another_site_are_not_shown(plant) -> None:
    admin, path = plant["admin"], "/admin/realtime/shelf/"
    html, count = listed(admin, path)
    assert "north-reason" in html
    assert leaks(html) == [], "South's reason and who shelved (a filter's choice)"
    assert count == 1
    assert leaks(admin.get(f"{path}?_facets=True").content.decode()) == []
    assert search_total(admin, path, "south-secret") == (0, 1)
    theirs = Shelf.objects.get(camera_id=8)
    for view in ("change", "history", "delete"):
        is_hidden(admin, f"{path}{theirs.pk}/{view}/")
    assert admin.post(f"{path}{theirs.pk}/delete/", {"post": "yes"}).status_code == 404
    assert Shelf.objects.count() == 2


def test_violations_of_another_site_are_a_404_in_the_admin(plant) -> None:
    admin = plant["admin"]
    html, count = listed(admin, "/admin/realtime/lotodetection/")
    assert count == 0 and leaks(html) == []
    south = plant["south_row"]
    for view in ("change", "history", "delete"):
        is_hidden(admin, f"/admin/realtime/lotodetection/{south}/{view}/")
    north = plant["north_row"]
    assert admin.get(f"/admin/realtime/ppedetection/{north}/change/").status_code == 200
    assert admin.get(f"/admin/realtime/ppedetection/{north}/history/").status_code == 200


def test_sites_are_managed_only_by_those_who_see_every_site(plant) -> None:
    admin, path = plant["admin"], "/admin/realtime/site/"
    south = Site.objects.get(name="South")
    assert path not in admin.get("/admin/").content.decode()
    assert admin.get(path).status_code == 403
    for view in ("change", "history", "delete"):
        assert admin.get(f"{path}{south.pk}/{view}/").status_code == 403, view
    assert admin.get(f"{path}add/").status_code == 403
    assert admin.post(f"{path}{south.pk}/delete/", {"post": "yes"}).status_code == 403
    form = {"name": "South", "camera_list": "1-10", "users": [plant["staff"].pk]}
    assert admin.post(f"{path}{south.pk}/change/", form).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [south.pk], "post": "yes"}
    assert admin.post(path, bulk).status_code == 403
    south.refresh_from_db()
    assert south.cameras == [6, 7, 8, 9, 10]
    assert list(south.users.values_list("username", flat=True)) == ["south-operator"]
    # Given `realtime.view_all_sites`, the same permissions manage them.
    plant["staff"].user_permissions.add(Permission.objects.get(codename="view_all_sites"))
    scopes.forget()
    manager = client_for(get_user_model().objects.get(pk=plant["staff"].pk))
    html, count = listed(manager, path)
    assert count == 2 and "south-operator" in html
    form["camera_list"] = "6-11"
    assert manager.post(f"{path}{south.pk}/change/", form).status_code == 302
    south.refresh_from_db()
    assert south.cameras == [6, 7, 8, 9, 10, 11]


def test_tokens_are_their_holders_and_the_managers(plant) -> None:
    admin, path = plant["admin"], "/admin/realtime/apitoken/"
    html, count = listed(admin, path)
    assert count == 1 and "north-staff" in html and leaks(html) == []
    mine = ApiToken.objects.get(user=plant["staff"])
    theirs = ApiToken.objects.get(user=plant["south"])
    for view in ("change", "history", "delete"):
        is_hidden(admin, f"{path}{theirs.pk}/{view}/")
    assert admin.post(f"{path}{theirs.pk}/delete/", {"post": "yes"}).status_code == 404
    bulk = {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"}
    admin.post(path, bulk)
    assert ApiToken.objects.filter(pk=theirs.pk).exists()
    # Her own: she sees it and may revoke it, never give it to someone else or extend it.
    assert admin.get(f"{path}{mine.pk}/change/").status_code == 200
    form = {"user": plant["south"].pk, "expires_at_0": "2999-01-01", "expires_at_1": "00:00"}
    assert admin.post(f"{path}{mine.pk}/change/", form).status_code == 403
    mine.refresh_from_db()
    assert (mine.user_id, mine.expires_at) == (plant["staff"].pk, None)
    assert admin.post(f"{path}{mine.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [theirs.pk]
    plant["staff"].user_permissions.add(Permission.objects.get(codename="view_all_sites"))
    manager = client_for(get_user_model().objects.get(pk=plant["staff"].pk))
    html, count = listed(manager, path)
    assert count == 1 and "south-operator" in html


def test_kinds_are_seen_by_staff_and_changed_only_by_managers(plant) -> None:
    """A kind's label, colour and sound are every site's: North's staff may not silence
    South's alarms."""
    admin, path = plant["admin"], "/admin/realtime/violationkind/"
    loto = ViolationKind.objects.get(slug="loto")
    assert admin.get(f"{path}{loto.pk}/change/").status_code == 200
    form = {"label": "Quiet", "colour": "#000000", "position": "1", "sound": ""}
    assert admin.post(f"{path}{loto.pk}/change/", form).status_code == 403
    loto.refresh_from_db()
    assert loto.label != "Quiet"
    plant["staff"].user_permissions.add(Permission.objects.get(codename="view_all_sites"))
    manager = client_for(get_user_model().objects.get(pk=plant["staff"].pk))
    assert manager.post(f"{path}{loto.pk}/change/", form).status_code == 302
    loto.refresh_from_db()
    assert loto.label == "Quiet"
