"""FakeFCM against the real google-auth service-account flow and a real aiohttp client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from tests.standins.fcm import FCM_ERROR_TYPE, FCM_SCOPE, FakeFCM


@pytest.fixture
def fcm() -> Iterator[FakeFCM]:
    with FakeFCM() as fake:
        yield fake


@pytest.fixture
def key_file(fcm: FakeFCM, tmp_path: Path) -> Path:
    return fcm.write_service_account(tmp_path / "service-account.json")


def credentials(path: Path, scopes: list[str] | None = None) -> service_account.Credentials:
    creds: service_account.Credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(path), scopes=scopes or [FCM_SCOPE]
    )
    return creds


def access_token(path: Path) -> str:
    creds = credentials(path)
    creds.refresh(Request())  # type: ignore[no-untyped-call]
    token = creds.token
    assert isinstance(token, str)
    return token


def message(token: str = "device-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "token": token,
        "notification": {"title": "还款提醒", "body": "您的还款 1234.50 元将于明天到期"},
        "data": {"kind": "repayment_due", "reminder_id": "r-1"},
        "android": {"priority": "high"},
        "apns": {"headers": {"apns-priority": "10"}},
    }
    body.update(extra)
    return {"message": body}


async def post(
    url: str, payload: Any, bearer: str | None, total: float = 10.0
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    client_timeout = aiohttp.ClientTimeout(total=total)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(url, json=payload, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def send(fcm: FakeFCM, payload: Any, bearer: str | None) -> tuple[int, dict[str, str], Any]:
    return asyncio.run(post(fcm.send_url(), payload, bearer))


def fcm_error_code(body: dict[str, Any]) -> str | None:
    for detail in body["error"].get("details", []):
        if detail.get("@type") == FCM_ERROR_TYPE:
            code = detail.get("errorCode")
            assert isinstance(code, str)
            return code
    return None


def test_service_account_file_loads_and_refreshes(fcm: FakeFCM, key_file: Path) -> None:
    info = json.loads(key_file.read_text())
    assert info["type"] == "service_account"
    assert info["token_uri"] == f"{fcm.url}/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    creds = credentials(key_file)
    assert creds.service_account_email == info["client_email"]
    creds.refresh(Request())  # type: ignore[no-untyped-call]
    assert creds.valid
    assert creds.token is not None
    assert fcm.token_grants == 1


def test_send_success(fcm: FakeFCM, key_file: Path) -> None:
    token = access_token(key_file)
    status, _, body = send(fcm, message("device-1"), token)
    assert status == 200
    assert body["name"].startswith("projects/herald-test/messages/")
    [record] = fcm.accepted_for("device-1")
    assert record["title"] == "还款提醒"
    assert record["body"] == "您的还款 1234.50 元将于明天到期"
    assert record["data"] == {"kind": "repayment_due", "reminder_id": "r-1"}
    assert record["name"] == body["name"]
    assert record["message"]["android"] == {"priority": "high"}
    assert fcm.requests == 1
    assert fcm.accepted_for("device-2") == []


def test_validate_only_is_not_recorded(fcm: FakeFCM, key_file: Path) -> None:
    status, _, body = send(fcm, {**message(), "validate_only": True}, access_token(key_file))
    assert status == 200
    assert body["name"] == "projects/herald-test/messages/fake_message_id"
    assert fcm.accepted == []


@pytest.mark.parametrize(
    ("status", "error_status", "rpc_status", "error_code", "retry_after"),
    [
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "INVALID_ARGUMENT", None),
        (404, "UNREGISTERED", "NOT_FOUND", "UNREGISTERED", None),
        (429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", 7),
        (503, "UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE", 1),
        (500, "INTERNAL", "INTERNAL", "INTERNAL", None),
    ],
)
def test_fail_next_uses_googles_error_format(
    fcm: FakeFCM,
    key_file: Path,
    status: int,
    error_status: str,
    rpc_status: str,
    error_code: str,
    retry_after: float | None,
) -> None:
    token = access_token(key_file)
    fcm.fail_next(2, status, error_status, retry_after=retry_after)
    for _ in range(2):
        got, headers, body = send(fcm, message(), token)
        assert got == status
        assert body["error"]["code"] == status
        assert body["error"]["status"] == rpc_status
        assert body["error"]["message"]
        assert fcm_error_code(body) == error_code
        if retry_after is None:
            assert "Retry-After" not in headers
        else:
            assert headers["Retry-After"] == str(retry_after)
    got, _, _ = send(fcm, message(), token)
    assert got == 200
    assert len(fcm.accepted) == 1
    assert fcm.requests == 3


def test_rpc_status_names_are_accepted_too(fcm: FakeFCM, key_file: Path) -> None:
    fcm.fail_next(1, 429, "RESOURCE_EXHAUSTED", retry_after=0.2)
    status, headers, body = send(fcm, message(), access_token(key_file))
    assert status == 429
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert fcm_error_code(body) == "QUOTA_EXCEEDED"
    assert headers["Retry-After"] == "1"


def test_unregistered_token_details_parse(fcm: FakeFCM, key_file: Path) -> None:
    status, _, body = send(fcm, message("unregistered-abc"), access_token(key_file))
    assert status == 404
    assert body == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [{"@type": FCM_ERROR_TYPE, "errorCode": "UNREGISTERED"}],
        }
    }
    assert fcm.accepted == []


def test_invalid_token(fcm: FakeFCM, key_file: Path) -> None:
    status, _, body = send(fcm, message("invalid-abc"), access_token(key_file))
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert fcm_error_code(body) == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "payload",
    [
        {"message": {"notification": {"title": "t", "body": "b"}}},
        {"message": {"token": "device-1"}},
        {"message": {"token": "device-1", "notification": {"title": "t", "body": "b"}, "data": {"n": 9}}},
        {"message": {"token": "device-1", "notification": {"title": "t"}, "priority": "high"}},
        {"token": "device-1"},
        {"message": {"token": "device-1", "notification": {"title": "t", "body": "长" * 2000}}},
    ],
    ids=["no-token", "no-notification", "data-not-string", "unknown-field", "no-message", "too-big"],
)
def test_invalid_shapes_are_400(fcm: FakeFCM, key_file: Path, payload: dict[str, Any]) -> None:
    status, _, body = send(fcm, payload, access_token(key_file))
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert fcm.accepted == []


def test_expired_tokens_are_401_until_refreshed(fcm: FakeFCM, key_file: Path) -> None:
    creds = credentials(key_file)
    creds.refresh(Request())  # type: ignore[no-untyped-call]
    fcm.expire_tokens()
    status, headers, body = send(fcm, message(), creds.token)
    assert status == 401
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert body["error"]["code"] == 401
    assert "invalid_token" in headers["WWW-Authenticate"]
    creds.refresh(Request())  # type: ignore[no-untyped-call]
    status, _, _ = send(fcm, message(), creds.token)
    assert status == 200
    assert fcm.token_grants == 2


def test_tokens_expire_after_their_lifetime(tmp_path: Path) -> None:
    now = [1000.0]
    with FakeFCM(token_lifetime=60, clock=lambda: now[0]) as fcm:
        token = access_token(fcm.write_service_account(tmp_path / "sa.json"))
        assert send(fcm, message(), token)[0] == 200
        now[0] += 61
        assert send(fcm, message(), token)[0] == 401


def test_missing_or_foreign_token_is_401(fcm: FakeFCM, key_file: Path) -> None:
    assert send(fcm, message(), None)[0] == 401
    assert send(fcm, message(), "ya29.not-issued-here")[0] == 401


def test_other_project_is_403(fcm: FakeFCM, key_file: Path) -> None:
    url = fcm.send_url("someone-else")
    status, _, body = asyncio.run(post(url, message(), access_token(key_file)))
    assert status == 403
    assert body["error"]["status"] == "PERMISSION_DENIED"


def test_outage_until_cleared(fcm: FakeFCM, key_file: Path) -> None:
    token = access_token(key_file)
    fcm.set_outage(503, retry_after=2)
    for _ in range(3):
        status, headers, body = send(fcm, message(), token)
        assert (status, headers["Retry-After"], fcm_error_code(body)) == (503, "2", "UNAVAILABLE")
    fcm.set_outage(None)
    assert send(fcm, message(), token)[0] == 200


def test_hang_next_accepts_then_stalls(fcm: FakeFCM, key_file: Path) -> None:
    token = access_token(key_file)
    fcm.hang_next(1, 5.0)
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(post(fcm.send_url(), message("device-slow"), token, total=0.3))
    # The provider accepted it even though the client never saw the answer.
    assert len(fcm.accepted_for("device-slow")) == 1
    assert send(fcm, message("device-fast"), token)[0] == 200


def test_assertion_signed_by_another_key_is_refused(fcm: FakeFCM, tmp_path: Path) -> None:
    info = fcm.service_account_info()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(info))
    with pytest.raises(RefreshError, match="invalid_grant"):
        credentials(path).refresh(Request())  # type: ignore[no-untyped-call]
    assert fcm.token_grants == 0


def test_scope_without_firebase_messaging_is_refused(fcm: FakeFCM, key_file: Path) -> None:
    creds = credentials(key_file, scopes=["https://www.googleapis.com/auth/userinfo.email"])
    with pytest.raises(RefreshError, match="invalid_scope"):
        creds.refresh(Request())  # type: ignore[no-untyped-call]
    assert fcm.token_grants == 0


def test_reachable_from_another_process(fcm: FakeFCM, key_file: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import requests
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        key_file, url, scope = sys.argv[1:]
        creds = service_account.Credentials.from_service_account_file(key_file, scopes=[scope])
        creds.refresh(Request())
        body = {"message": {"token": "from-subprocess", "notification": {"title": "t", "body": "b"}}}
        headers = {"Authorization": "Bearer " + creds.token}
        response = requests.post(url, json=body, headers=headers, timeout=10)
        print(response.status_code)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(key_file), fcm.send_url(), FCM_SCOPE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert len(fcm.accepted_for("from-subprocess")) == 1


def test_restart_keeps_port(tmp_path: Path) -> None:
    fcm = FakeFCM().start()
    try:
        url = fcm.url
        fcm.stop()
        fcm.start()
        assert fcm.url == url
        token = access_token(fcm.write_service_account(tmp_path / "sa.json"))
        assert send(fcm, message(), token)[0] == 200
    finally:
        fcm.stop()
