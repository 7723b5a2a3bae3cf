"""`herald flower` against the running workers: basic auth everywhere, /metrics included."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from herald.ops.embedded import free_port
from tests.harness import Herald, wait_until

pytestmark = pytest.mark.integration

USER, PASSWORD = "ops-li", "flower-s3cret"
DEADLINE = 60.0


@pytest.fixture(scope="module")
def flower(herald: Herald) -> Iterator[str]:
    port = free_port()
    env = {**herald.env, "HERALD_FLOWER_USER": USER, "HERALD_FLOWER_PASSWORD": PASSWORD}
    proc = herald.stack.spawn("flower", ["flower", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        assert proc.poll() is None, herald.stack.log("flower")[-3000:]
        try:
            requests.get(url + "/healthcheck", timeout=5)
        except requests.ConnectionError:
            return False
        return True

    try:
        wait_until(listening, DEADLINE, "Flower to listen")
        yield url
    finally:
        herald.stack.stop_process("flower")


def test_flower_sees_the_workers_with_basic_auth(flower: str) -> None:
    def workers() -> list[str]:
        answer = requests.get(
            f"{flower}/api/workers", params={"refresh": "1"}, auth=(USER, PASSWORD), timeout=30
        )
        assert answer.status_code == 200, answer.text
        return [name for name in answer.json() if name.startswith("test-")]

    names = wait_until(workers, DEADLINE, "Flower to list the herald workers")
    assert len(names) == 2  # herald worker --processes 2: one Celery node per process


def test_nothing_is_open_without_the_password(flower: str) -> None:
    for path in ("/api/workers", "/metrics", "/healthcheck", "/"):
        assert requests.get(flower + path, timeout=10).status_code == 401, path
        assert requests.get(flower + path, auth=(USER, "wrong"), timeout=10).status_code == 401, path
    metrics = requests.get(f"{flower}/metrics", auth=(USER, PASSWORD), timeout=10)
    assert metrics.status_code == 200
    assert "flower_" in metrics.text
    assert requests.get(f"{flower}/healthcheck", auth=(USER, PASSWORD), timeout=10).text == "OK"


def test_flower_is_read_only_by_default(flower: str) -> None:
    # read-only answers 403 before it looks the worker up (404): no real worker is at risk
    shutdown = requests.post(
        f"{flower}/api/worker/shutdown/nobody@nowhere", auth=(USER, PASSWORD), timeout=10
    )
    assert shutdown.status_code == 403


def test_flower_refuses_to_start_without_a_password(herald: Herald) -> None:
    env = {k: v for k, v in herald.env.items() if k != "HERALD_FLOWER_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "herald.cli", "flower", "--port", str(free_port())],
        env={**env, "COLUMNS": "250"},
        cwd=herald.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "HERALD_FLOWER_PASSWORD is not set" in done.stderr
