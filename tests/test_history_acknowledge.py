"""/history/'s bulk acknowledgement (POST /history/acknowledge/): the live table's checks
(realtime.console.forms.AcknowledgeManyForm), the user's sites, and back to the page."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from realtime.access import scopes
from tests.helpers import insert_violation

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/history/acknowledge/"


def acknowledged(pg: Any) -> list[tuple[str, int, str]]:
    return [
        (table, int(pk), by)
        for table, pk, by in pg.execute(
            "SELECT table_name, violation_id, acknowledged_by FROM realtime_acknowledgement"
            " ORDER BY table_name, violation_id"
        ).fetchall()
    ]


def said(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_checked_rows_are_acknowledged_and_the_page_comes_back(pg, client_of) -> None:
    ppe = [insert_violation(pg, "violation_ppedetections") for _ in range(3)]
    loto = insert_violation(pg, "violation_lotodetections")
    back = "/history/?camera=1&acknowledged=0"
    client = client_of("hugo")
    response = client.post(URL, {"violation": [f"ppe:{ppe[0]}", f"loto:{loto}"], "next": back})
    assert response.status_code == 303 and response["Location"] == back
    assert acknowledged(pg) == [
        ("violation_lotodetections", loto, "hugo"),
        ("violation_ppedetections", ppe[0], "hugo"),
    ]
    page = client.get(back)
    assert said(page) == ["Acknowledged 2 violations."]
    # Once more, with one done already and one that does not exist.
    refs = [f"ppe:{ppe[0]}", f"ppe:{ppe[1]}", "ppe:999999999"]
    page = client.post(URL, {"violation": refs, "next": back}, follow=True)
    assert said(page) == [
        "Acknowledged 1 of the 3 selected: the others were already acknowledged"
        " or are no longer there."
    ]


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ([], "Select at least one violation."),
        (["ppe:1", "ppe"], "Not a violation: 'ppe' (expected KIND:ID, as ppe:12)."),
        (["cars:1"], "Not a violation: 'cars:1'"),
        ([f"ppe:{'9' * 19}"], "Not a violation"),
        (["ppe:1"] * 500, "At most 500 violations at once."),
    ],
)
def test_bad_input_is_refused_as_on_the_live_table_and_changes_nothing(
    pg, client_of, refs, message
) -> None:
    row_id = insert_violation(pg, "violation_ppedetections")
    refs = [f"ppe:{row_id}", *refs] if refs else refs
    client = client_of("ida")
    live = client.post("/violations/acknowledge/", {"violation": refs})
    assert live.status_code == 400 and message in live.content.decode()
    page = client.post(URL, {"violation": refs, "next": "/history/"}, follow=True)
    assert page.redirect_chain == [("/history/", 303)]
    [text] = said(page)
    assert text.startswith("Nothing acknowledged: ") and message in text
    assert acknowledged(pg) == []


def test_only_the_users_cameras_are_acknowledged(pg) -> None:
    alice = get_user_model().objects.create_user("alice", password="a-long-password-1")
    call_command("sites", "set", "North", "--cameras", "1-3", stdout=io.StringIO())
    call_command("sites", "grant", "North", "alice", stdout=io.StringIO())
    scopes.forget()
    mine = insert_violation(pg, "violation_ppedetections", camera_id=2)
    theirs = insert_violation(pg, "violation_ppedetections", camera_id=5)
    client = Client()
    client.force_login(alice)
    client.post(URL, {"violation": [f"ppe:{mine}", f"ppe:{theirs}"]})
    assert acknowledged(pg) == [("violation_ppedetections", mine, "alice")]


@pytest.mark.parametrize(
    "back",
    ["https://evil.example/history/", "//evil.example/history/", "/admin/", "", "/history\\x"],
)
def test_it_only_goes_back_to_the_history(pg, client_of, back) -> None:
    row_id = insert_violation(pg)
    response = client_of("jan").post(URL, {"violation": [f"human:{row_id}"], "next": back})
    assert response.status_code == 303
    assert response["Location"] == "/history/"


def test_it_needs_a_login_a_post_and_a_csrf_token(pg, client_of) -> None:
    row_id = insert_violation(pg)
    data = {"violation": [f"human:{row_id}"]}
    assert Client().post(URL, data).status_code == 302
    assert client_of("jan").get(URL).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="jan"))
    assert strict.post(URL, data).status_code == 403
    assert acknowledged(pg) == []
