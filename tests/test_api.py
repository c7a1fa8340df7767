"""The JSON API (/api/v1/, issue 26): the history's list by keyset pages, one violation,
acknowledging and notes through the product's own actions, shelves, kinds; tokens that
read or act; sites; errors as JSON. The changes and the browser are in
tests/test_api_live.py, Schemathesis in tests/test_api_schema.py."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from realtime.access import scopes
from realtime.models import Acknowledgement, ApiToken, OperatorAction, Shelf, Site
from realtime.violations import kinds
from tests.helpers import insert_violation

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-password-1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_json(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def operator() -> Any:
    return get_user_model().objects.create_user("api-operator", password=PASSWORD)


@pytest.fixture
def read_token(operator: Any) -> str:
    return ApiToken.issue(operator)


@pytest.fixture
def act_token(operator: Any) -> str:
    out = io.StringIO()
    with redirect_stderr(io.StringIO()):
        call_command("issue_token", operator.username, "--scope", "act", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def acknowledgements(pg: Any) -> int:
    return int(pg.execute("SELECT count(*) FROM realtime_acknowledgement").fetchone()[0])


# --- the list ------------------------------------------------------------------------------

ROWS_PER_KIND = 5000


def many_rows(pg: Any) -> None:
    """5,000 rows in each kind's table, many sharing a date and a time (the keyset's ties)."""
    for kind in kinds.registry():
        pg.execute(
            f"INSERT INTO {kind.qualified} (camera_id, violation_date, violation_time,"
            " violation_image) SELECT n %% 7, DATE '2026-01-01' + (n %% 40),"
            " TIME '08:00' + (n %% 3) * INTERVAL '1 second', '/media/k.jpg'"
            " FROM generate_series(1, %s) AS n",
            [ROWS_PER_KIND],
        )


def test_a_keyset_walk_returns_every_row_once_in_the_historys_order(pg, read_token) -> None:
    many_rows(pg)
    client, seen, order, cursor, pages = Client(), [], [], None, 0
    while True:
        query = {"limit": "500"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/violations/", query, headers=bearer(read_token)).json()
        pages += 1
        for row in page["results"]:
            seen.append((row["kind"], row["id"]))
            order.append((row["violation_date"], row["violation_time"], row["kind"], row["id"]))
        cursor = page["next"]
        if cursor is None:
            break
    total = ROWS_PER_KIND * len(list(kinds.registry()))
    assert len(seen) == total and len(set(seen)) == total
    assert order == sorted(order, reverse=True), "newest first, as the history"
    assert pages == total // 500


def test_the_list_takes_the_historys_filters(pg, read_token) -> None:
    ids = [insert_violation(pg, "violation_ppedetections", camera_id=4) for _ in range(3)]
    insert_violation(pg, "violation_humandetections", camera_id=4)
    insert_violation(pg, "violation_ppedetections", camera_id=5)
    client = Client(headers=bearer(read_token))
    post_json(client, f"/api/v1/violations/ppe/{ids[0]}/acknowledge/", {})  # refused: read
    Acknowledgement.objects.create(
        table_name="violation_ppedetections", violation_id=ids[0], acknowledged_by="x",
        acknowledged_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    found = client.get("/api/v1/violations/", {"kind": "ppe", "camera": "4"}).json()
    assert sorted(r["id"] for r in found["results"]) == ids
    row = next(r for r in found["results"] if r["id"] == ids[0])
    assert row["acknowledged_by"] == "x" and row["acknowledged_at"].startswith("2026-01-01")
    assert set(row) == {
        "kind", "id", "camera_id", "violation_date", "violation_time", "violation_image",
        "data", "acknowledged_by", "acknowledged_at", "shelved",
    }  # fmt: skip
    open_ = client.get("/api/v1/violations/", {"kind": "ppe", "acknowledged": "0"}).json()
    assert ids[0] not in [r["id"] for r in open_["results"]] and len(open_["results"]) == 3
    done = client.get("/api/v1/violations/", {"acknowledged": "1"}).json()
    assert [r["id"] for r in done["results"]] == [ids[0]]
    assert client.get("/api/v1/violations/", {"to": "2000-01-01"}).json()["results"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"kind": "nope"},
        {"camera": "x"},
        {"from": "yesterday"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"acknowledged": "2"},
        {"cursor": "garbage"},
        {"limit": "0"},
        {"limit": "x"},
    ],
)
def test_a_bad_filter_is_a_400_that_says_why(read_token, query) -> None:
    response = Client().get("/api/v1/violations/", query, headers=bearer(read_token))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_without_a_login_or_a_token_every_path_is_a_401(pg) -> None:
    row = insert_violation(pg, "violation_ppedetections")
    client = Client()
    for path in ["/api/v1/violations/", f"/api/v1/violations/ppe/{row}/", "/api/v1/kinds/",
                 "/api/v1/shelves/", "/api/v1/changes/"]:  # fmt: skip
        assert client.get(path).status_code == 401
        assert client.get(path, headers=bearer("wrong")).json() == {"detail": "Unauthorized"}
    assert post_json(client, f"/api/v1/violations/ppe/{row}/acknowledge/", {}).status_code == 401
    assert acknowledgements(pg) == 0


# --- acting ------------------------------------------------------------------------------


def test_a_read_tokens_post_is_a_403_and_changes_nothing(pg, read_token) -> None:
    row = insert_violation(pg, "violation_ppedetections", camera_id=3)
    client = Client(headers=bearer(read_token))
    for path, body in [
        (f"/api/v1/violations/ppe/{row}/acknowledge/", {"note": "seen"}),
        (f"/api/v1/violations/ppe/{row}/notes/", {"text": "seen"}),
        ("/api/v1/shelves/", {"camera": 3, "minutes": 15}),
    ]:
        response = post_json(client, path, body)
        assert response.status_code == 403, path
        assert "--scope act" in response.json()["detail"]
    assert acknowledgements(pg) == 0 and not Shelf.objects.exists()
    assert not OperatorAction.objects.exists()


def test_an_act_token_acknowledges_notes_and_shelves_as_an_operator(pg, act_token) -> None:
    row = insert_violation(pg, "violation_ppedetections", camera_id=3)
    client = Client(headers=bearer(act_token))
    done = post_json(client, f"/api/v1/violations/ppe/{row}/acknowledge/", {"note": "ticket 7"})
    assert done.status_code == 200
    body = done.json()
    assert body["acknowledged_by"] == "api-operator"
    assert [n["text"] for n in body["notes"]] == ["ticket 7"]
    assert [a["action"] for a in body["history"]] == ["acknowledge", "note"]
    again = post_json(client, f"/api/v1/violations/ppe/{row}/acknowledge/", None)
    assert again.status_code == 200 and again.json()["acknowledged_at"] == body["acknowledged_at"]
    noted = post_json(client, f"/api/v1/violations/ppe/{row}/notes/", {"text": "closed"})
    assert [n["text"] for n in noted.json()["notes"]] == ["ticket 7", "closed"]
    assert post_json(client, f"/api/v1/violations/ppe/{row}/notes/", {"text": ""}).json() == {
        "detail": "A note needs some text."
    }
    shelved = post_json(client, "/api/v1/shelves/", {"camera": 3, "minutes": 30, "reason": "lens"})
    assert shelved.status_code == 201 and shelved.json()["shelved_by"] == "api-operator"
    listed = client.get("/api/v1/shelves/").json()
    assert [(s["camera_id"], s["reason"]) for s in listed] == [(3, "lens")]
    assert post_json(client, "/api/v1/shelves/", {"camera": 3, "minutes": 0}).status_code == 400
    # A shelf covers what its camera reports from the second it began: a row of its own, as
    # the one above may be stamped a second before when the requests take over half of one.
    later = insert_violation(pg, "violation_ppedetections", camera_id=3)
    assert client.get(f"/api/v1/violations/ppe/{later}/").json()["shelved"] is True


def test_an_act_token_acts_through_the_api_only(pg, act_token) -> None:
    """Not through the pages' forms, nor the admin: those take a login."""
    row = insert_violation(pg, "violation_ppedetections", camera_id=3)
    client = Client(headers=bearer(act_token))
    for path in [f"/violations/ppe/{row}/acknowledge/", f"/violations/ppe/{row}/note/",
                 "/violations/acknowledge/", "/shelves/", "/history/acknowledge/"]:  # fmt: skip
        response = client.post(path, {"text": "x", "violation": f"ppe:{row}", "camera": "3",
                                      "minutes": "15"})  # fmt: skip
        assert response.status_code in (302, 403), path
    added = client.post("/admin/realtime/shelf/add/", {"camera_id": "3"})
    assert added.status_code in (302, 403)
    assert acknowledgements(pg) == 0 and not Shelf.objects.exists()


def test_a_logins_post_needs_its_csrf_token_a_tokens_does_not(pg, operator, act_token) -> None:
    row = insert_violation(pg, "violation_ppedetections")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    path = f"/api/v1/violations/ppe/{row}/acknowledge/"
    refused = post_json(browser, path, {})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert acknowledgements(pg) == 0
    browser.get("/")  # the page sets the CSRF cookie, as a browser's first visit does
    token = browser.cookies["csrftoken"].value
    assert post_json(browser, path, {}, **{"X-CSRFToken": token}).status_code == 200
    other = insert_violation(pg, "violation_ppedetections")
    scripted = Client(enforce_csrf_checks=True, headers=bearer(act_token))
    assert (
        post_json(scripted, f"/api/v1/violations/ppe/{other}/acknowledge/", {}).status_code == 200
    )
    assert acknowledgements(pg) == 2


def test_a_wrong_token_is_not_rescued_by_a_session(pg, operator) -> None:
    client = Client()
    client.force_login(operator)
    assert client.get("/api/v1/kinds/").status_code == 200
    assert client.get("/api/v1/kinds/", headers=bearer("wrong")).status_code == 401


# --- sites ---------------------------------------------------------------------------------


def test_a_scoped_token_neither_reads_nor_acts_on_another_sites_camera(pg) -> None:
    users = get_user_model().objects
    alice = users.create_user("alice", password=PASSWORD)
    north = Site.objects.create(name="North", cameras=[1, 2])
    north.users.add(alice)
    Site.objects.create(name="South", cameras=[4, 5])
    scopes.forget()
    key = ApiToken.issue(alice, scope=ApiToken.ACT)
    client = Client(headers=bearer(key))
    start = client.get("/api/v1/changes/").json()["next"]
    mine = insert_violation(pg, "violation_ppedetections", camera_id=1)
    theirs = insert_violation(pg, "violation_ppedetections", camera_id=4)
    Shelf.objects.create(
        camera_id=4, shelved_by="bob", shelved_at="2026-01-01T00:00:00Z",
        until="2999-01-01T00:00:00Z", time_zone="UTC",
    )  # fmt: skip
    listed = client.get("/api/v1/violations/").json()["results"]
    assert [r["id"] for r in listed] == [mine]
    assert client.get("/api/v1/violations/", {"camera": "4"}).json()["results"] == []
    assert client.get(f"/api/v1/violations/ppe/{theirs}/").status_code == 404
    for path, body in [
        (f"/api/v1/violations/ppe/{theirs}/acknowledge/", {"note": "x"}),
        (f"/api/v1/violations/ppe/{theirs}/notes/", {"text": "x"}),
        ("/api/v1/shelves/", {"camera": 4, "minutes": 15}),
    ]:
        response = post_json(client, path, body)
        assert response.status_code == 404 and response.json()["detail"], path
    assert client.get("/api/v1/shelves/").json() == []
    assert acknowledgements(pg) == 0 and Shelf.objects.count() == 1
    assert not OperatorAction.objects.exists()
    changes = client.get("/api/v1/changes/", {"after": start}).json()["results"]
    assert [c["data"]["data"]["camera_id"] for c in changes] == [1]
    assert post_json(client, f"/api/v1/violations/ppe/{mine}/acknowledge/", {}).status_code == 200


# --- the rest ------------------------------------------------------------------------------


def test_kinds_and_the_schema(read_token) -> None:
    client = Client(headers=bearer(read_token))
    assert [k["slug"] for k in client.get("/api/v1/kinds/").json()] == ["human", "loto", "ppe"]
    schema = Client().get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    paths = {"/api/v1/violations/", "/api/v1/violations/{kind}/{id}/acknowledge/",
             "/api/v1/changes/", "/api/v1/shelves/", "/api/v1/kinds/"}  # fmt: skip
    assert paths <= set(schema["paths"])
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()
    assert b"/static/vendor/swagger-ui-" in docs.content


def test_issue_token_scopes_are_listed(operator, act_token, read_token) -> None:
    out = io.StringIO()
    call_command("issue_token", "--list", operator.username, stdout=out)
    lines = out.getvalue().splitlines()
    assert any(act_token[:8] in line and " act " in line for line in lines)
    assert any(read_token[:8] in line and " read " in line for line in lines)
