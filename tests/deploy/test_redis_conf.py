"""deploy/redis.conf starts a real redis-server with what herald needs, and herald's own
embedded Redis (`herald run`, the test suites) runs with the same settings."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald.holds.suppression import COMPACT_VALUE, compactness_advice
from herald.ops.embedded import free_port, start_redis
from tests.deploy.support import DEPLOY
from tests.harness import wait_until

pytestmark = pytest.mark.integration

NEEDED = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "hash-max-listpack-value": str(COMPACT_VALUE),
}


def _settings(client: redis.Redis) -> dict[str, str]:
    answer = client.config_get("*")
    return {str(k): str(v) for k, v in answer.items()}


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[redis.Redis]:
    """redis-server on deploy/redis.conf; only the port and the data directory overridden."""
    port = free_port()
    log = tmp_path / "redis.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["redis-server", str(DEPLOY / "redis.conf"), "--port", str(port), "--dir", str(tmp_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(port=port, decode_responses=True, socket_connect_timeout=1)

    def answers() -> bool:
        assert proc.poll() is None, f"redis-server exited: {log.read_text()[-2000:]}"
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, 30, "redis-server on deploy/redis.conf")
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_redis_conf_turns_on_aof_everysec_noeviction_and_compact_hashes(
    deployed: redis.Redis, tmp_path: Path
) -> None:
    settings = _settings(deployed)
    assert {k: settings[k] for k in NEEDED} == NEEDED
    assert settings["save"] == ""
    assert settings["bind"] == "127.0.0.1"
    assert settings["protected-mode"] == "yes"
    assert compactness_advice(deployed) is None  # herald suppress init has nothing to say
    deployed.set("herald:probe", "1")
    aof = list((tmp_path / settings["appenddirname"]).glob("*.aof"))
    assert aof, "the append-only file is written in --dir"


def test_a_full_redis_refuses_writes_rather_than_evicting(deployed: redis.Redis) -> None:
    deployed.set("herald:kept", "x" * 1000)
    used = int(deployed.info("memory")["used_memory"])
    deployed.config_set("maxmemory", used)
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            _fill(deployed)
        assert deployed.get("herald:kept") == "x" * 1000
    finally:
        deployed.config_set("maxmemory", 0)


def _fill(client: redis.Redis) -> None:
    for i in range(1000):
        client.set(f"herald:more:{i}", "y" * 10_000)


def test_the_embedded_redis_matches_deploy_redis_conf(deployed: redis.Redis, tmp_path: Path) -> None:
    port = free_port()
    proc = start_redis(port, tmp_path / "embedded", tmp_path / "embedded.log")
    try:
        embedded = _settings(redis.Redis(port=port, decode_responses=True))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    deployed_settings = _settings(deployed)
    for key in (*NEEDED, "save"):
        assert embedded[key] == deployed_settings[key], key
