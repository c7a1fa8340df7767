"""Acknowledging a violation: stored in the product's own table, never on the detectors' row,
and travels through the event log as a STATE event of the row."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from realtime.pipeline import event_log
from realtime.pipeline.changes import acknowledgement_frame
from tests.helpers import insert_violation, newest_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_acknowledge_stores_who_and_when_once(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_ppedetections", image="/media/ack.jpg")
    before = pg.execute(
        "SELECT row_to_json(t)::text FROM violation_ppedetections t WHERE id = %s", [row_id]
    ).fetchone()
    response = client_of("anna").post(f"/violations/ppe/{row_id}/acknowledge/")
    assert response.status_code == 200
    assert 'class="violation kind-ppe acknowledged"' in response.content.decode()
    assert "Acknowledged by anna" in response.content.decode()
    client_of("bert").post(f"/violations/ppe/{row_id}/acknowledge/")
    who, when = pg.execute(
        "SELECT acknowledged_by, acknowledged_at FROM realtime_acknowledgement"
        " WHERE table_name = 'violation_ppedetections' AND violation_id = %s",
        [row_id],
    ).fetchone()
    assert who == "anna" and when is not None
    after = pg.execute(
        "SELECT row_to_json(t)::text FROM violation_ppedetections t WHERE id = %s", [row_id]
    ).fetchone()
    assert after == before, "the detectors' row is not touched"
    ops = pg.execute(
        "SELECT op, data->>'violation_image' FROM realtime_event"
        " WHERE table_name = 'violation_ppedetections' AND (data->>'id')::bigint = %s"
        " ORDER BY id",
        [row_id],
    ).fetchall()
    assert ops == [("INSERT", "/media/ack.jpg"), ("STATE", "/media/ack.jpg")], (
        "one STATE event with the row, not an UPDATE of it"
    )


def test_un_acknowledging_is_a_state_event_too(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_humandetections")
    client_of("carla").post(f"/violations/human/{row_id}/acknowledge/")
    pg.execute("DELETE FROM realtime_acknowledgement WHERE violation_id = %s", [row_id])
    ops = pg.execute(
        "SELECT op FROM realtime_event WHERE table_name = 'violation_humandetections'"
        " AND (data->>'id')::bigint = %s ORDER BY id",
        [row_id],
    ).fetchall()
    assert ops == [("INSERT",), ("STATE",), ("STATE",)]


def test_acknowledge_needs_a_login_a_post_and_a_csrf_token(pg, client_of) -> None:
    row_id = insert_violation(pg)
    path = f"/violations/human/{row_id}/acknowledge/"
    assert Client().post(path).status_code == 302
    assert client_of("carl").get(path).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="carl"))
    assert strict.post(path).status_code == 403


def test_acknowledge_unknown_things_is_a_404(client_of) -> None:
    client = client_of("dora")
    assert client.post("/violations/cars/1/acknowledge/").status_code == 404
    assert client.post("/violations/human/999999999/acknowledge/").status_code == 404
    assert client.post(f"/violations/human/{'9' * 30}/acknowledge/").status_code == 404


def test_hide_acknowledged_and_count_unacknowledged(pg, client_of) -> None:
    client = client_of("emil")
    acked = insert_violation(pg, "violation_lotodetections", image="/media/acked.jpg")
    insert_violation(pg, "violation_lotodetections", image="/media/open.jpg")
    client.post(f"/violations/loto/{acked}/acknowledge/")
    page = client.get("/?unacknowledged=1").content.decode()
    assert "/media/open.jpg" in page and "/media/acked.jpg" not in page
    assert '<span class="count" data-kind="loto">1</span>' in page
    assert "/media/acked.jpg" in client.get("/").content.decode()


def test_detectors_insert_without_the_acknowledgement_columns(pg) -> None:
    pg.execute(
        "INSERT INTO violation_humandetections"
        " (camera_id, violation_date, violation_time, violation_image)"
        " VALUES (2, '2025-07-28', '15:00:00', '/media/seed.jpg')"
    )


def test_acknowledge_several_at_once_across_kinds(pg, client_of) -> None:
    ppe = [insert_violation(pg, "violation_ppedetections") for _ in range(2)]
    loto = insert_violation(pg, "violation_lotodetections")
    client_of("greta").post(f"/violations/ppe/{ppe[0]}/acknowledge/")
    before = newest_event(pg)
    refs = [f"ppe:{ppe[0]}", f"ppe:{ppe[1]}", f"loto:{loto}", "loto:999999999"]
    response = client_of("hugo").post("/violations/acknowledge/", {"violation": refs})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('class="violation kind-') == 3, "the rows that exist, as they now are"
    assert body.count("Acknowledged by hugo") == 2 and "Acknowledged by greta" in body
    acknowledged = pg.execute(
        "SELECT table_name, violation_id, acknowledged_by FROM realtime_acknowledgement"
        " ORDER BY table_name, violation_id"
    ).fetchall()
    assert acknowledged == [
        ("violation_lotodetections", loto, "hugo"),
        ("violation_ppedetections", ppe[0], "greta"),  # the first acknowledgement counts
        ("violation_ppedetections", ppe[1], "hugo"),
    ]
    states = pg.execute(
        "SELECT count(*) FROM realtime_event WHERE op = 'STATE' AND id > %s", [before]
    ).fetchone()
    assert states == (2,), "one STATE event per new acknowledgement: every screen re-draws"


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
def test_acknowledging_several_refuses_bad_input_and_changes_nothing(
    pg, client_of, refs, message
) -> None:
    row_id = insert_violation(pg, "violation_ppedetections")
    refs = [f"ppe:{row_id}", *refs] if refs else refs
    response = client_of("ida").post("/violations/acknowledge/", {"violation": refs})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert pg.execute("SELECT count(*) FROM realtime_acknowledgement").fetchone() == (0,)


def test_acknowledging_several_needs_a_login_a_post_and_a_csrf_token(pg, client_of) -> None:
    row_id = insert_violation(pg)
    data = {"violation": [f"human:{row_id}"]}
    assert Client().post("/violations/acknowledge/", data).status_code == 302
    assert client_of("jan").get("/violations/acknowledge/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="jan"))
    assert strict.post("/violations/acknowledge/", data).status_code == 403
    assert pg.execute("SELECT count(*) FROM realtime_acknowledgement").fetchone() == (0,)


def test_a_note_follows_an_acknowledgement_and_is_kept_in_the_history(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_ppedetections", image="/media/noted.jpg")
    anna, bert = client_of("anna"), client_of("bert")
    anna.post(f"/violations/ppe/{row_id}/acknowledge/")
    before = newest_event(pg)
    response = bert.post(f"/violations/ppe/{row_id}/note/", {"text": "  Forklift cleared.  "})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Acknowledged by anna" in body and "<q>Forklift cleared.</q>" in body
    assert ">bert, " in body
    assert pg.execute(
        "SELECT acknowledged_by, note, noted_by FROM realtime_acknowledgement"
        " WHERE violation_id = %s",
        [row_id],
    ).fetchone() == ("anna", "Forklift cleared.", "bert")
    [state] = event_log.changes_after(before, 10)
    assert state["op"] == "STATE" and state["data"]["id"] == row_id
    assert state["state"] is not None
    assert (state["state"]["note"], state["state"]["noted_by"]) == ("Forklift cleared.", "bert")
    frame = json.loads(acknowledgement_frame(state))
    assert (frame["acknowledged_by"], frame["note"], frame["noted_by"]) == (
        "anna",
        "Forklift cleared.",
        "bert",
    )
    history = pg.execute(
        "SELECT action, actor, text FROM realtime_operator_action WHERE violation_id = %s"
        " ORDER BY at, id",
        [row_id],
    ).fetchall()
    assert history == [("acknowledge", "anna", ""), ("note", "bert", "Forklift cleared.")]


def test_a_note_on_an_unacknowledged_violation_acknowledges_it(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_humandetections")
    response = client_of("cora").post(f"/violations/human/{row_id}/note/", {"text": "Seen."})
    assert response.status_code == 200
    assert "Acknowledged by cora" in response.content.decode()
    actions = pg.execute(
        "SELECT action FROM realtime_operator_action WHERE violation_id = %s ORDER BY at, id",
        [row_id],
    ).fetchall()
    assert actions == [("acknowledge",), ("note",)]


def test_a_bad_note_is_a_clear_4xx_and_changes_nothing(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_humandetections")
    client = client_of("dan")
    path = f"/violations/human/{row_id}/note/"
    empty = client.post(path, {"text": "   "})
    assert (empty.status_code, empty.content) == (400, b"A note needs some text.")
    long = client.post(path, {"text": "x" * 1001})
    assert (long.status_code, long.content) == (400, b"A note has at most 1000 characters.")
    assert client.post("/violations/human/999999999/note/", {"text": "a"}).status_code == 404
    assert client.post("/violations/cars/1/note/", {"text": "a"}).status_code == 404
    assert Client().post(path, {"text": "a"}).status_code == 302
    assert pg.execute("SELECT count(*) FROM realtime_acknowledgement").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM realtime_operator_action").fetchone() == (0,)


def test_the_admin_shows_notes_and_the_history_read_only(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_ppedetections")
    client_of("eva").post(f"/violations/ppe/{row_id}/note/", {"text": "Helmet handed out."})
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root-admin"))
    acknowledgements = admin.get("/admin/realtime/acknowledgement/").content.decode()
    assert "Helmet handed out." in acknowledgements
    history = admin.get("/admin/realtime/operatoraction/")
    assert history.status_code == 200
    assert history.content.decode().count("Helmet handed out.") == 1
    action = pg.execute("SELECT id FROM realtime_operator_action WHERE action = 'note'").fetchone()
    assert action is not None
    assert admin.post(f"/admin/realtime/operatoraction/{action[0]}/delete/").status_code == 403


def test_a_violations_page_shows_its_picture_and_its_history(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_ppedetections", image="/media/cam3/helmet.jpg")
    client_of("fay").post(f"/violations/ppe/{row_id}/acknowledge/")
    client_of("gus").post(f"/violations/ppe/{row_id}/note/", {"text": "Helmet <b>on</b> now."})
    html = client_of("hal").get(f"/violations/ppe/{row_id}/").content.decode()
    assert f'<img src="/violations/ppe/{row_id}/image/?v=' in html
    history = re.search(r'<ol id="history" class="detail-history">(.*?)</ol>', html, re.S)
    assert history is not None
    items = re.findall(r"<li>.*?</li>", history.group(1))
    assert len(items) == 2
    assert "<strong>fay</strong> acknowledged" in items[0]
    assert "<strong>gus</strong> added a note: <q>Helmet &lt;b&gt;on&lt;/b&gt; now.</q>" in items[1]
    fresh = insert_violation(pg, "violation_ppedetections")
    assert (
        "Nobody has acted on it yet."
        in client_of("ivy").get(f"/violations/ppe/{fresh}/").content.decode()
    )


def test_a_note_with_a_nul_byte_is_a_400(pg, client_of) -> None:
    row_id = insert_violation(pg, "violation_humandetections")
    response = client_of("kim").post(f"/violations/human/{row_id}/note/", {"text": "a\x00b"})
    assert (response.status_code, response.content) == (
        400,
        b"A note cannot contain control characters other than line breaks and tabs.",
    )
    assert pg.execute("SELECT count(*) FROM realtime_acknowledgement").fetchone() == (0,)
