"""The API beside a real Daphne (issue 26): /api/v1/changes/ agrees with the SSE stream
(the same changes, data and ids; an id of either resumes the other), an act token's
acknowledgement reaches an open browser within 2 seconds, the docs page works under the
CSP, and a client generated from the served schema reads and acts."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from realtime.models import ApiToken
from tests import browsing
from tests.browsing import PASSWORD, expect_live
from tests.helpers import event_number, insert_violation, memory_stack, sse

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

stack = memory_stack("api")


@pytest.fixture
def act_token() -> str:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("mes", password=PASSWORD)
    return ApiToken.issue(user, scope=ApiToken.ACT)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def api_changes(client: httpx.AsyncClient, after: str) -> tuple[list[Any], str]:
    """Every change after `after`, each once, as a program polls: page after page while
    `more`, dropping by number a change it has (one that committed late may come again)."""
    found: dict[int, Any] = {}
    while True:
        page = (await client.get("/api/v1/changes/", params={"after": after})).json()
        for change in page["results"]:
            found.setdefault(event_number(change["id"]), change)
        after = page["next"]
        if not page["more"]:
            return list(found.values()), after


async def test_changes_agree_with_the_sse_streams_ids(stack, act_token, pg) -> None:
    async with httpx.AsyncClient(base_url=stack.http, headers=bearer(act_token)) as client:
        start = (await client.get("/api/v1/changes/")).json()["next"]
        async with sse(f"{stack.http}/events/violations/", bearer(act_token)) as live:
            rows = [insert_violation(pg, "violation_ppedetections") for _ in range(5)]
            done = await client.post(f"/api/v1/violations/ppe/{rows[2]}/acknowledge/")
            assert done.status_code == 200
            streamed: list[tuple[str, str, dict[str, Any]]] = []
            while len(streamed) < 6:
                event = await live.next_event()
                if event.event in ("message", "acknowledgement"):
                    streamed.append((event.id or "", event.event, json.loads(event.data)))
        polled, end = await api_changes(client, start)
        as_polled = [(c["id"], c["event"], c["data"]) for c in polled]
        # The same changes, in the same order, with the same data and change numbers (the
        # live stream's positions carry the listener's horizon, a replay's its own).
        assert [numbered(c) for c in as_polled] == [numbered(c) for c in streamed]
        assert [e for _, e, _ in as_polled].count("acknowledgement") == 1
        # A stream resumed from the same place replays what the API gave (the positions'
        # horizons are each read's own: the oldest transaction running when it read).
        headers = bearer(act_token) | {"Last-Event-ID": start}
        replayed: dict[int, Any] = {}
        async with sse(f"{stack.http}/events/violations/", headers) as resumed:
            while len(replayed) < 6:
                event = await resumed.next_event()
                replayed.setdefault(event_number(event.id or ""), event)
        as_replayed = [(r.id or "", r.event, json.loads(r.data)) for r in replayed.values()]
        assert [numbered(c) for c in as_replayed] == [numbered(c) for c in as_polled]
        assert all(i.startswith("violations:") for i, _, _ in as_polled + as_replayed)
        # The API's `next` resumes a stream; a stream's id is an `after` of the API.
        newer = insert_violation(pg, "violation_lotodetections")
        headers = bearer(act_token) | {"Last-Event-ID": end}
        async with sse(f"{stack.http}/events/violations/", headers) as resumed:
            change = await resumed.next_change()
            while change["id"] <= event_number(end):  # a late commit, again: dropped by id
                change = await resumed.next_change()
            assert change["data"]["id"] == newer and change["table"] == "violation_lotodetections"
        last = streamed[-1][0]
        after_stream = (await client.get("/api/v1/changes/", params={"after": last})).json()
        # Those at or below it that committed late may come again (clients drop them by id).
        new = [c for c in after_stream["results"] if event_number(c["id"]) > event_number(last)]
        assert [c["data"]["data"]["id"] for c in new] == [newer]


def numbered(change: tuple[str, str, dict[str, Any]]) -> tuple[int, str, dict[str, Any]]:
    """A change with its positions (its id, its data's `resume`) as change numbers."""
    event_id, event, data = change
    if "resume" in data:
        data = {**data, "resume": event_number(data["resume"])}
    return event_number(event_id), event, data


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator")


def test_an_act_tokens_acknowledgement_reaches_an_open_browser_within_2_s(
    stack, operator, act_token, page, pg
) -> None:
    browsing.log_in(page, stack.http, "/", "operator", PASSWORD)
    expect_live(page)
    row = insert_violation(pg, "violation_ppedetections", image="/media/for-the-mes.jpg")
    expect(page.locator(f"#violation-ppe-{row}")).to_be_visible(timeout=5_000)
    done = httpx.post(
        f"{stack.http}/api/v1/violations/ppe/{row}/acknowledge/",
        json={"note": "ticket 4711"},
        headers=bearer(act_token),
    )
    assert done.status_code == 200, done.text
    expect(page.locator(f"#violation-ppe-{row}")).to_contain_text(
        "Acknowledged by mes", timeout=2_000
    )


def test_the_docs_page_works_under_the_content_security_policy(stack, operator, page) -> None:
    """Swagger UI from static/vendor/, its start-up from a static script: the page fixture
    fails the test on any CSP refusal."""
    page.goto(f"{stack.http}/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Safety violations")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()


def test_a_client_generated_from_the_schema_reads_and_acknowledges(
    stack, act_token, pg, tmp_path, monkeypatch
) -> None:
    """openapi-python-client makes a typed client from the served schema; it lists the
    violations and acknowledges one with a note, as an MES would."""
    generator = Path(sys.executable).parent / "openapi-python-client"
    made = subprocess.run(
        [str(generator), "generate", "--url", f"{stack.http}/api/v1/openapi.json",
         "--meta", "none", "--output-path", str(tmp_path / "violations_client")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": f"{generator.parent}:{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    client_module = importlib.import_module("violations_client")
    listing = importlib.import_module("violations_client.api.violations.list_violations")
    acknowledging = importlib.import_module("violations_client.api.violations.acknowledge")
    models = importlib.import_module("violations_client.models")

    row = insert_violation(pg, "violation_humandetections", camera_id=7)
    client = client_module.AuthenticatedClient(base_url=stack.http, token=act_token)
    page = listing.sync(client=client, kind="human", camera="7")
    assert isinstance(page, models.ViolationPage)
    assert [(v.kind, v.id, v.camera_id) for v in page.results] == [("human", row, 7)]
    done = acknowledging.sync(
        "human", row, client=client, body=models.AcknowledgeIn(note="ticket INC-1")
    )
    assert isinstance(done, models.ViolationDetail)
    assert done.acknowledged_by == "mes" and [n.text for n in done.notes] == ["ticket INC-1"]
    # (The generated code cannot leave the optional body out: it sends an empty one.)
    refused = acknowledging.sync("human", 10**12, client=client, body=models.AcknowledgeIn())
    assert isinstance(refused, models.Error) and refused.detail
