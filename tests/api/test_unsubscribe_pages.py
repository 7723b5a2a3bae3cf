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


def test_a_chinese_browser_reads_both_pages_in_chinese_and_the_address_stays_masked(
    page: TestClient, rds: redis.Redis
) -> None:
    address = f"li-{uuid.uuid4().hex[:8]}@example.cn"
    token = unsubscribe_token(SECRET, "email", address)
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    asked = page.get(f"/v1/unsubscribe/{token}", headers=chinese)
    assert asked.status_code == 200
    assert '<html lang="zh-CN">' in asked.text
    assert "<h1>退订</h1>" in asked.text
    assert "停止向 " in asked.text
    assert address not in asked.text  # masked, as in English
    assert asked.headers["Content-Language"] == "zh-CN"
    done = page.post(f"/v1/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, headers=chinese)
    assert "<h1>已退订</h1>" in done.text
    assert OptOuts(rds).contains("email", address)


def test_the_language_switch_of_the_unsubscribe_page_sticks(page: TestClient) -> None:
    token = unsubscribe_token(SECRET, "email", f"u-{uuid.uuid4().hex[:8]}@example.cn")
    switched = page.get(f"/v1/unsubscribe/{token}?lang=en", headers={"Accept-Language": "zh-CN"})
    assert "<h1>Unsubscribe</h1>" in switched.text
    assert switched.cookies.get("herald_lang") == "en"
    again = page.get(f"/v1/unsubscribe/{token}", headers={"Accept-Language": "zh-CN"})  # the cookie is kept
    assert "<h1>Unsubscribe</h1>" in again.text
    page.cookies.clear()
