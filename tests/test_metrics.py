"""/metrics: Prometheus text, behind a login or token, summed over processes."""

from __future__ import annotations

import re

import httpx
import pytest
from django.test import Client

from tests.helpers import Stack, insert_violation, next_frame, websocket

pytestmark = pytest.mark.django_db(transaction=True)


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if metric.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def test_metrics_need_credentials(token) -> None:
    assert Client().get("/metrics").status_code == 401
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert sample(response.content.decode(), "realtime_notify_queue_usage") is not None


@pytest.mark.e2e
async def test_metrics_add_up_the_server_and_listener_processes(
    database_url, pg, token, tmp_path
) -> None:
    from django.conf import settings

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    stack = Stack.start(
        "redis",
        database_url,
        settings.TEST_REDIS_URL,
        tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    try:
        async with websocket(f"{stack.ws}/ws/violations/?token={token}") as ws:
            row_id = insert_violation(pg, image="/media/counted.jpg")
            assert (await next_frame(ws))["data"]["id"] == row_id
            async with httpx.AsyncClient() as client:
                response = await client.get(
                    f"{stack.http}/metrics", headers={"Authorization": f"Bearer {token}"}
                )
            text = response.text
        # Forwarded by listen_notify, a separate process: summed through the shared dir.
        forwarded = sample(
            text, "realtime_events_forwarded_total", table="violation_humandetections", op="INSERT"
        )
        assert forwarded is not None and forwarded >= 1
        assert (sample(text, "realtime_commit_to_forward_seconds_count") or 0) >= 1
        assert sample(text, "realtime_connected_clients", transport="websocket") == 1.0
        assert sample(text, "realtime_listener_reconnects_total") == 0.0
    finally:
        stack.stop()
