"""The auth matrix: every key-protected route, its scope, and what each kind of caller gets.

No key, a malformed or unknown key, or a revoked key: 401. A valid key without the route's
scope: 403. A key with the scope: anything but 401/403 (the request itself may be refused for
what it asks: 404, 422). A new ``/v1`` route without a row here fails the completeness test.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from herald.access.apikeys import SCOPES
from tests.api.conftest import Keys, auth
from tests.api.routes import api_routes

# (method, path template, scope, a request for the allowed caller)
MATRIX: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/v1/reminders", "producer", {"json": {"id": "nope"}}),
    ("GET", "/v1/reminders/{id}", "producer", {}),
    ("DELETE", "/v1/reminders/{id}", "producer", {}),
    ("GET", "/v1/suppressions", "operator", {}),
    ("GET", "/v1/suppressions/{account_id}", "operator", {}),
    ("PUT", "/v1/suppressions/{account_id}", "operator", {"json": {}}),
    ("DELETE", "/v1/suppressions/{account_id}", "operator", {"params": {"reason": "matrix"}}),
    ("POST", "/v1/agreements/events", "operator", {"json": {}}),
    ("GET", "/v1/in-doubt", "operator", {}),
    ("POST", "/v1/in-doubt/{delivery}/resolve", "operator", {"json": {"sent": False, "reason": "x"}}),
    ("GET", "/v1/optouts/{channel}", "operator", {}),
    ("POST", "/v1/optouts/{channel}", "operator", {"json": {}}),
    ("POST", "/v1/optouts/{channel}/remove", "operator", {"json": {}}),
    ("GET", "/v1/accounts/{account_id}/history", "operator", {}),
    ("GET", "/v1/keys", "admin", {}),
    ("POST", "/v1/keys", "admin", {"json": {}}),
    ("DELETE", "/v1/keys/{key_id}", "admin", {}),
]

PUBLIC: dict[tuple[str, str], str] = {
    ("POST", "/v1/providers/twilio/status"): "signed by Twilio (X-Twilio-Signature)",
    ("POST", "/v1/providers/twilio/inbound"): "signed by Twilio (X-Twilio-Signature)",
    ("POST", "/v1/providers/aliyun/reports"): "the secret token in the URL (Aliyun signs nothing it pushes)",
    ("GET", "/v1/unsubscribe/{token}"): "the signed token is the credential (RFC 8058)",
    ("POST", "/v1/unsubscribe/{token}"): "the signed token is the credential (RFC 8058)",
}

SAMPLE = {
    "id": "matrix-reminder",
    "account_id": "matrix-account",
    "delivery": "matrix-reminder:sms",
    "channel": "sms",
    "key_id": "0123456789ab",
}

CALLERS = ["no key", "malformed key", "unknown key", "revoked key", *SCOPES]


def _headers(caller: str, keys: Keys) -> dict[str, str]:
    if caller == "no key":
        return {}
    if caller == "malformed key":
        return auth("not-a-herald-key")
    if caller == "unknown key":
        return auth("hk_0123456789ab_" + "x" * 43)
    if caller == "revoked key":
        return auth(keys.revoked)
    return auth(keys.of(caller))


def _mounted(app: FastAPI) -> set[tuple[str, str]]:
    return set(api_routes(app))


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "scope", "request_kwargs"),
    MATRIX,
    ids=[f"{m} {p}" for m, p, _, _ in MATRIX],
)
def test_route_admits_only_its_scope(
    client: TestClient,
    app: FastAPI,
    keys: Keys,
    caller: str,
    method: str,
    path: str,
    scope: str,
    request_kwargs: dict[str, Any],
) -> None:
    url = path.format(**SAMPLE)
    response = client.request(method, url, headers=_headers(caller, keys), **request_kwargs)
    if caller in SCOPES and caller == scope:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    elif caller in SCOPES:
        assert response.status_code == 403, response.text
        assert scope in response.json()["detail"]
    else:
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_x_api_key_header_works_too(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/keys", headers={"X-API-Key": keys.admin}).status_code == 200
    assert client.get("/v1/keys", headers={"X-API-Key": keys.operator}).status_code == 403
    assert client.get("/v1/keys", headers={"X-API-Key": "hk_bad"}).status_code == 401


def test_every_v1_route_is_in_the_matrix(app: FastAPI) -> None:
    listed = {(m, p) for m, p, _, _ in MATRIX} | set(PUBLIC)
    unlisted = sorted(r for r in _mounted(app) if r[1].startswith("/v1/") and r not in listed)
    assert not unlisted, (
        f"routes without an entry in the auth matrix (tests/api/test_auth_matrix.py): {unlisted}; "
        "add each to MATRIX with its scope, or to PUBLIC with why it needs no key"
    )


def test_every_route_of_the_matrix_is_mounted(app: FastAPI) -> None:
    missing = {(m, p) for m, p, _, _ in MATRIX} - _mounted(app)
    assert not missing, f"routes in the matrix that the app does not serve: {sorted(missing)}"


def test_healthz_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code in (200, 503)


def test_the_openapi_documents_the_keys_and_the_errors(app: FastAPI) -> None:
    spec = app.openapi()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    for method, path, _, _ in MATRIX:
        operation = spec["paths"].get(path, {}).get(method.lower())
        assert operation is not None, f"{method} {path} is not in the OpenAPI description"
        assert operation.get("security"), f"{method} {path} documents no security"
        assert operation.get("summary"), f"{method} {path} has no summary"
        assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
