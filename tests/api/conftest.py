"""The HTTP API on a real redis-server: the app in-process (TestClient) and one key per scope.

The session starts one redis-server on a free port. Tests use fresh reminder, account and key
ids, so they never see each other's work; the health tests use a database of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from herald.access.apikeys import KeyStore
from herald.api.app import create_app
from herald.config import Settings
from tests.harness import make_reminder, redis_of_its_own

OWNERS = {"producer": "billing-svc", "operator": "ops-li", "admin": "sec-wang"}


@dataclass(frozen=True)
class Keys:
    """Raw API keys: one per scope, one with every scope, and a revoked one."""

    producer: str
    operator: str
    admin: str
    everything: str
    revoked: str

    def of(self, scope: str) -> str:
        """The key that holds only ``scope``."""
        value: str = getattr(self, scope)
        return value


def auth(key: str) -> dict[str, str]:
    """The header that presents ``key``."""
    return {"Authorization": f"Bearer {key}"}


def fresh(prefix: str) -> str:
    """A new id nobody else in the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the session (database 0: the API's)."""
    with redis_of_its_own(tmp_path_factory.mktemp("api-redis")) as url:
        yield url


@pytest.fixture(scope="session")
def settings(redis_url: str, repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the app under test."""
    return Settings(
        redis_url=redis_url,
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path_factory.mktemp("outbox"),
        ledger_url=f"sqlite:///{tmp_path_factory.mktemp('ledger')}/ledger.sqlite3",
    )


def build_app(settings: Settings) -> FastAPI:
    """The API on ``settings``."""
    return create_app(settings)


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    """The API app, as uvicorn's factory builds it."""
    return build_app(settings)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client on the app (no server errors raised in-process: they come back as 500)."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def rds(redis_url: str) -> redis.Redis:
    """A client on the API's Redis, answers decoded."""
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(scope="session")
def keys(redis_url: str) -> Keys:
    """One key per scope, one with all three, and one revoked (it held all three)."""
    store = KeyStore(redis.Redis.from_url(redis_url))
    made = {scope: store.create(owner, [scope], by="tests")[0] for scope, owner in OWNERS.items()}
    everything, _ = store.create("all-scopes", ["producer", "operator", "admin"], by="tests")
    revoked, record = store.create("gone", ["producer", "operator", "admin"], by="tests")
    store.revoke(record.key_id)
    return Keys(everything=everything, revoked=revoked, **made)


@pytest.fixture
def reminder() -> dict[str, Any]:
    """A valid reminder with a fresh id."""
    return make_reminder()
