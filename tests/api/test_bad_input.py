"""Input that once could have crashed a route: never a 5xx, always a 4xx naming what is wrong.

JSON may carry a lone surrogate (``"\\ud800"``): valid JSON, but not text that UTF-8, Redis or
an error message echoing it can hold.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Keys, auth
from tests.harness import make_reminder

SURROGATE = "\\ud800"


def _reminder_with(field: str, raw_value: str) -> bytes:
    reminder = make_reminder()
    reminder[field] = "PLACEHOLDER"
    return json.dumps(reminder).replace('"PLACEHOLDER"', raw_value).encode()


def _deep(levels: int) -> bytes:
    reminder = make_reminder()
    data: dict[str, object] = {}
    cursor = data
    for _ in range(levels):
        cursor["a"] = {}
        cursor = cursor["a"]  # type: ignore[assignment]
    reminder["data"] = data
    return json.dumps(reminder).encode()


CASES = [
    ("POST", "/v1/reminders", _reminder_with("id", f'"{SURROGATE}"'), 422),
    ("POST", "/v1/reminders", _reminder_with("account_id", f'"x{SURROGATE}"'), 422),
    ("POST", "/v1/reminders", _reminder_with("data", f'{{"name": "{SURROGATE}"}}'), 422),
    ("POST", "/v1/reminders", f'["{SURROGATE}", 1, null]'.encode(), 200),
    ("POST", "/v1/reminders", _deep(300), 422),
    ("POST", "/v1/reminders", b"[" * 100_000 + b"]" * 100_000, 400),
    ("POST", "/v1/reminders", b"\xff\xfe not utf-8", 422),
    ("PUT", "/v1/suppressions/acct-x", f'{{"reason": "{SURROGATE}"}}'.encode(), 422),
    ("PUT", "/v1/suppressions/acct-x", f'{{"reason": "x", "until": "{SURROGATE}"}}'.encode(), 422),
    ("POST", "/v1/optouts/push", f'{{"address": "{SURROGATE}"}}'.encode(), 422),
    ("POST", "/v1/keys", f'{{"owner": "{SURROGATE}", "scopes": ["admin"]}}'.encode(), 422),
    (
        "POST",
        "/v1/agreements/events",
        f'{{"account_id": "a", "agreement": "b", "event": "signed", "until": "{SURROGATE}"}}'.encode(),
        422,
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_bad_input_is_a_client_error(
    client: TestClient, keys: Keys, method: str, path: str, body: bytes, status: int
) -> None:
    headers = {**auth(keys.everything), "Content-Type": "application/json"}
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()  # a JSON body that says why


@pytest.mark.parametrize("before", ["e:51746854-89295983296088438276", "a:18446744073709551616-0"])
def test_a_history_cursor_beyond_any_stream_id_is_a_client_error(
    client: TestClient, keys: Keys, before: str
) -> None:
    response = client.get(
        "/v1/accounts/acct-x/history", params={"before": before}, headers=auth(keys.everything)
    )
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]  # shaped as every other 422 of the API
    assert problem["loc"] == ["query", "before"]
    assert "not an event id" in problem["msg"]
