"""The operator page's suites: a real redis-server, the real app under uvicorn, headless Chromium.

One redis-server and one ``herald api`` (uvicorn) per session, on free ports; each test makes
its own operator key and uses fresh account ids, so tests never see each other's work. The
fast rule tests (``test_operator_rules.py``) drive the app in-process with FastAPI's
TestClient against the same redis-server.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from herald.access.apikeys import KeyStore
from herald.config import Settings
from herald.ops.embedded import free_port
from herald.ops.stack import LocalStack
from tests.harness import redis_of_its_own, wait_until

SECRET = "operator-page-tests-secret-0123456789"
CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # Debian's chromium runs headless as root only without its sandbox
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def page_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the session's own, with the hold store marked populated."""
    with redis_of_its_own(tmp_path_factory.mktemp("operator-redis")) as url:
        yield url


@pytest.fixture(scope="session")
def page_settings(page_redis_url: str, repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the app under test (a secret key set, the project's templates)."""
    return Settings(
        redis_url=page_redis_url,
        secret_key=SECRET,  # type: ignore[arg-type]
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path_factory.mktemp("outbox"),
    )


@pytest.fixture
def client(page_redis_url: str) -> Iterator[redis.Redis]:
    """A Redis client on the session's redis-server."""
    conn = redis.Redis.from_url(page_redis_url)
    yield conn
    conn.close()


@pytest.fixture
def operator(client: redis.Redis) -> tuple[str, str]:
    """A fresh operator key: (the key, its owner)."""
    owner = f"ops-{uuid.uuid4().hex[:8]}"
    raw, _ = KeyStore(client).create(owner, ["operator"], by="tests")
    return raw, owner


def fresh_account() -> str:
    """An account id no other test uses."""
    return f"acct-{uuid.uuid4().hex[:10]}"


@contextmanager
def api_server(home: Path, repo_root: Path, env: dict[str, str]) -> Iterator[str]:
    """``herald api`` (uvicorn) on a free port with ``env`` over the stack's; its base URL."""
    port = free_port()
    stack = LocalStack(home, cwd=repo_root)
    stack.configure({"HERALD_SECRET_KEY": SECRET, **env}).pop("HERALD_PUBLIC_URL", None)
    proc = stack.spawn("api", ["api", "--host", "127.0.0.1", "--port", str(port)])
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, f"herald api exited: {stack.log('api')[-3000:]}"
        try:
            return httpx.get(f"{base}/operator", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 60, "herald api to serve /operator")
        yield base
    finally:
        stack.close()


@pytest.fixture(scope="session")
def page_server(
    page_settings: Settings, repo_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``herald api`` on the session's Redis; its base URL."""
    env = {
        "HERALD_REDIS_URL": page_settings.redis_url,
        "HERALD_TEMPLATES_DIR": str(page_settings.templates_dir),
        "HERALD_OUTBOX_DIR": str(page_settings.outbox_dir),
    }
    with api_server(tmp_path_factory.mktemp("operator-api"), repo_root, env) as base:
        yield base


@pytest.fixture(scope="package")  # playwright's loop must not outlive these tests
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        pytest.skip(
            f"{CHROMIUM} not found: run ./test.sh (it installs Debian's chromium) or apt-get install chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, page_server: str) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page on the running app."""
    context = browser.new_context(base_url=page_server)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs  # an alert() would mean markup was run: tests check this stays empty
    try:
        yield tab
    finally:
        context.close()
