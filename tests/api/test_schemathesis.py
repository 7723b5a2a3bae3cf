"""Property tests of the served OpenAPI description: no generated request gets a 5xx.

Schemathesis reads ``/openapi.json`` from the app and generates requests, valid and invalid,
for every operation of this API, sent with a key that holds every scope. Each answer must be
no server error and must match its documented status codes, content type and schema. Examples
are capped (``MAX_EXAMPLES`` per operation and mode) so the whole run stays well under a minute.

The operations are listed at collection from an app that is never served (building one does
not connect to Redis), so each gets its own test id; the requests go to the session's app.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from herald.api.app import create_app
from herald.config import Settings
from tests.api.conftest import Keys, auth

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "30"))
"""Per operation and run; raise it (HERALD_FUZZ_EXAMPLES=500) for a longer search."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NOT_OURS = ("/v1/providers/", "/v1/unsubscribe/", "/operator", "/metrics")
"""Other modules' routes (their own tests cover them)."""


def _operations() -> list[tuple[str, str]]:
    spec = create_app(Settings(redis_url="redis://127.0.0.1:9/0")).openapi()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if not path.startswith(NOT_OURS)
        for method in item
    ]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(app: FastAPI) -> Any:
    """The app's OpenAPI description, as schemathesis reads it from the app itself."""
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_gets_a_server_error(api_schema: Any, keys: Keys, method: str, path: str) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=auth(keys.everything), checks=checks)

    # /healthz answers a documented 503 while no worker runs (none does here): not a server error
    checks = [c for c in CHECKS if c is not not_a_server_error] if path == "/healthz" else CHECKS

    check()


def test_every_operation_of_this_api_is_fuzzed() -> None:
    assert ("POST", "/v1/reminders") in OPERATIONS
    assert ("GET", "/healthz") in OPERATIONS
    assert ("GET", "/v1/accounts/{account_id}/history") in OPERATIONS
    assert len(OPERATIONS) >= 17
