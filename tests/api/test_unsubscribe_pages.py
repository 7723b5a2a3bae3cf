"""The unsubscribe pages borrowers open: what they send back besides the page."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from herald.config import Settings
from herald.holds.optouts import OptOuts
from herald.rendering.links import unsubscribe_token
from tests.api.conftest import build_app

SECRET = "unsubscribe-pages-test-secret-0123456789"


@pytest.fixture(scope="module")
def page(settings: Settings) -> TestClient:
    return TestClient(build_app(settings.model_copy(update={"secret_key": SecretStr(SECRET)})))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_both_pages_forbid_frames_scripts_and_leaking_the_token(
    page: TestClient, rds: redis.Redis, method: str
) -> None:
    address = f"u-{uuid.uuid4().hex[:8]}@example.cn"
    token = unsubscribe_token(SECRET, "email", address)
    answer = page.request(method, f"/v1/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert "script-src" not in policy
    assert "unsafe-inline" not in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    # the page's one style is the one the policy allows, by its hash
    style = re.search(r"<style>(.*?)</style>", answer.text, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "style=" not in answer.text  # no inline style attribute (the policy would block it)
    assert OptOuts(rds).contains("email", address) is (method == "POST")
