"""Schemathesis against the schema a real Daphne serves (issue 26): every operation, with
data the schema allows and data it does not; no answer is a 5xx, and every answer's status,
content type and body are those the schema declares."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from realtime.models import ApiToken
from tests.helpers import insert_violation, memory_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

stack = memory_stack("api-schema")

# Bounded for a shared 2-core machine; SCHEMATHESIS_EXAMPLES=N runs more.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def act_token(pg: Any) -> str:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("fuzzer", password="a-long-password-1")
    for table in ("violation_ppedetections", "violation_humandetections"):
        for camera in (1, 2):
            insert_violation(pg, table, camera_id=camera)
    return ApiToken.issue(user, scope=ApiToken.ACT)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_its_schema_says(stack, act_token, mode) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.http}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {act_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8, [op.label for op in operations]

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers(case: Any) -> None:
            case.call_and_validate(base_url=stack.http, headers=headers, checks=CHECKS)

        answers()
