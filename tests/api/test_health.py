"""``GET /healthz``: Redis reachable and workers consuming (their heartbeats), without a key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from herald.config import Settings
from herald.ops.embedded import free_port
from herald.ops.health import check_health
from herald.ops.heartbeat import INDEX, Heartbeat, live_workers, worker_key
from herald.state.queues import INTAKE, SMS_BULK
from tests.api.conftest import build_app
from tests.harness import running_herald, wait_until


@pytest.fixture
def quiet(settings: Settings) -> Iterator[tuple[TestClient, redis.Redis]]:
    """The API on a Redis database of its own (no queued messages, no heartbeats)."""
    url = settings.redis_url.rsplit("/", 1)[0] + "/1"
    client = redis.Redis.from_url(url)
    client.flushdb()
    with TestClient(build_app(settings.model_copy(update={"redis_url": url, "health_stall": 60.0}))) as api:
        yield api, client
    client.flushdb()


def test_no_live_worker_is_unhealthy(quiet: tuple[TestClient, redis.Redis]) -> None:
    api, _ = quiet
    response = api.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["redis"], body["workers"]) == ("unhealthy", "ok", 0)
    assert "no worker process is alive" in body["problems"][0]


def test_a_live_heartbeat_is_healthy_and_stopping_removes_it(quiet: tuple[TestClient, redis.Redis]) -> None:
    api, client = quiet
    beat = Heartbeat(client, 5.0, node="w1@test")
    beat.beat()
    assert 0 < client.ttl(worker_key(beat.host, beat.pid)) <= 15
    response = api.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "redis": "ok",
        "workers": 1,
        "queued": 0,
        "last_consumed_seconds_ago": response.json()["last_consumed_seconds_ago"],
        "problems": [],
        "watchdog_exits_last_hour": 0,
        "last_watchdog_exit": None,
    }
    assert [w.node for w in live_workers(client)] == ["w1@test"]
    beat.stop()
    assert api.get("/healthz").status_code == 503
    assert client.smembers(INDEX) == set()


def test_a_heartbeat_that_expired_is_a_dead_worker(quiet: tuple[TestClient, redis.Redis]) -> None:
    api, client = quiet
    beat = Heartbeat(client, 5.0)
    beat.beat()
    client.delete(beat.key)  # what Redis does three intervals after a process died or hung
    response = api.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"] == 0
    assert client.smembers(INDEX) == set()  # the reader removed the dead name


def test_a_backlog_nobody_takes_is_unhealthy_until_a_worker_consumes(
    quiet: tuple[TestClient, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, client = quiet
    beat = Heartbeat(client, 5.0)
    beat.beat()
    client.lpush(INTAKE, b"{}")
    client.lpush(SMS_BULK + "\x06\x166", b"{}")  # a priority step's list counts too
    assert api.get("/healthz").status_code == 200  # the backlog is fresh: the worker just started

    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "3600")  # an hour later, nothing consumed
    beat.beat()  # still alive: the heartbeat thread runs on while the consumer is stuck
    response = api.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["queued"] == 2
    assert body["workers"] == 1
    assert "2 messages wait in the queues and no worker has taken one" in body["problems"][0]

    beat.touch()  # it took a task
    beat.beat()
    assert api.get("/healthz").status_code == 200
    client.delete(INTAKE, SMS_BULK + "\x06\x166")
    beat.stop()


def test_an_idle_system_with_empty_queues_stays_healthy(
    quiet: tuple[TestClient, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, client = quiet
    beat = Heartbeat(client, 5.0)
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "86400")
    beat.beat()
    assert api.get("/healthz").status_code == 200
    beat.stop()


def test_redis_unreachable_is_unhealthy_not_an_error(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    health = check_health(redis.Redis.from_url(down.redis_url), stall=60)
    assert not health.ok
    assert health.redis.startswith("unreachable")
    with TestClient(build_app(down)) as api:
        response = api.get("/healthz")
        assert response.status_code == 503
        assert response.json()["problems"] == ["Redis is not reachable"]


@pytest.mark.integration
def test_real_worker_processes_report_their_heartbeats(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> None:
    with running_herald(tmp_path_factory.mktemp("health"), repo_root, api=True) as system:

        def both_beating() -> httpx.Response | None:
            response = httpx.get(system.api_url + "/healthz", timeout=10)
            return response if response.json()["workers"] == 2 else None

        # `herald worker --processes 2`: one heartbeat per process, written once it is ready
        response = wait_until(both_beating, 30, "two worker heartbeats")
        assert response.status_code == 200, response.text
        workers = live_workers(redis.Redis.from_url(system.url))
        assert all(w.node.startswith("test-") for w in workers)
