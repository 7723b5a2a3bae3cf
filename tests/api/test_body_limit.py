"""Request bodies over HERALD_API_MAX_BODY get 413, declared or chunked, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from herald.config import Settings
from tests.api.conftest import Keys, auth, build_app, fresh
from tests.harness import make_reminder

LIMIT = 4096


@pytest.fixture(scope="module")
def small(settings: Settings) -> Iterator[TestClient]:
    with TestClient(build_app(settings.model_copy(update={"api_max_body": LIMIT}))) as tc:
        yield tc


def _batch(size: int) -> list[dict[str, Any]]:
    return [make_reminder(id=fresh("big")) for _ in range(size)]


def test_a_declared_body_over_the_cap_is_refused_and_nothing_is_stored(
    small: TestClient, keys: Keys, rds: redis.Redis
) -> None:
    batch = _batch(20)
    body = orjson.dumps(batch)
    assert len(body) > LIMIT
    response = small.post(
        "/v1/reminders", content=body, headers={**auth(keys.producer), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "HERALD_API_MAX_BODY" in response.json()["detail"]
    assert not any(rds.exists(f"herald:r:{r['id']}") for r in batch)


def test_a_chunked_body_over_the_cap_is_refused_and_nothing_is_stored(
    small: TestClient, keys: Keys, rds: redis.Redis
) -> None:
    batch = _batch(20)
    body = orjson.dumps(batch)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it arrives
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = small.post(
        "/v1/reminders", content=chunks(), headers={**auth(keys.producer), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert not any(rds.exists(f"herald:r:{r['id']}") for r in batch)


def test_a_body_under_the_cap_goes_through(small: TestClient, keys: Keys) -> None:
    response = small.post("/v1/reminders", json=_batch(1)[0], headers=auth(keys.producer))
    assert response.status_code == 201, response.text
