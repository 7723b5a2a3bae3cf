"""deploy/healthcheck.py (the image's HEALTHCHECK) against real herald processes.

A real `herald api` and a real `herald worker` host with its /metrics behind a token, on a real
redis-server: healthy while they answer, unhealthy once they are gone; the processes without a
port are healthy while alive.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.ops.embedded import free_port
from herald.ops.stack import LocalStack
from tests.deploy.support import DEPLOY
from tests.harness import wait_until

pytestmark = pytest.mark.integration

SCRIPT = DEPLOY / "healthcheck.py"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LocalStack]:
    """A redis-server, and herald's environment on it; each test starts its processes."""
    stack = LocalStack(tmp_path_factory.mktemp("healthcheck"), cwd=repo_root)
    try:
        stack.start_redis()
        stack.configure(
            {
                "HERALD_TEMPLATES_DIR": str(repo_root / "templates"),
                "HERALD_METRICS_TOKEN": "scrape-token-for-tests",
                "HERALD_METRICS_PORT": "0",
            }
        )
        yield stack
    finally:
        stack.close()


@pytest.fixture
def env(stack: LocalStack) -> dict[str, str]:
    return stack.env


def healthcheck(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *command], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_api_is_healthy_while_it_serves_its_openapi(stack: LocalStack, env: dict[str, str]) -> None:
    port = free_port()
    api = stack.spawn("api", ["api", "--port", str(port)])
    try:
        wait_until(
            lambda: (
                api.poll() is not None
                or healthcheck(env, "herald", "api", "--port", str(port)).returncode == 0
            ),
            60,
            "the API to answer",
        )
        assert api.poll() is None, stack.log("api")[-3000:]
        ok = healthcheck(env, "tini", "--", "herald", "api", "--port", str(port))
        assert ok.returncode == 0, ok.stdout
        assert "openapi.json answered 200" in ok.stdout
        # /healthz answers 503 here (no worker runs): the API's liveness does not depend on it
        defaults = {**env, "HERALD_API_PORT": str(port)}
        assert healthcheck(defaults, "herald", "api").returncode == 0
    finally:
        stack.stop_process("api")
    gone = healthcheck(env, "herald", "api", "--port", str(port))
    assert gone.returncode == 1
    assert gone.stdout.startswith("unhealthy:")


def test_a_worker_host_is_healthy_while_its_metrics_answer(stack: LocalStack, env: dict[str, str]) -> None:
    metrics_port = free_port()
    worker_env = {**env, "HERALD_METRICS_PORT": str(metrics_port)}
    command = [
        "herald",
        "worker",
        "--processes",
        "1",
        "-n",
        f"health-{metrics_port}@%h",
        "-Q",
        "herald.intake",
    ]
    worker = stack.spawn("worker", command[1:], env=worker_env)
    try:
        wait_until(
            lambda: worker.poll() is not None or healthcheck(worker_env, *command).returncode == 0,
            90,
            "the worker host's /metrics",
        )
        assert worker.poll() is None, stack.log("worker")[-3000:]
        without_token = {k: v for k, v in worker_env.items() if k != "HERALD_METRICS_TOKEN"}
        refused = healthcheck(without_token, *command)
        assert refused.returncode == 1
        assert "401" in refused.stdout  # the check sends the token; without it the host refuses
    finally:
        stack.stop_process("worker")
    assert healthcheck(worker_env, *command).returncode == 1


@pytest.mark.parametrize(
    "command",
    [
        ["herald", "scheduler"],
        ["herald", "reconcile"],
        ["herald", "ledger"],
        ["herald", "suppress", "init", "--by", "compose"],
        ["herald", "worker", "-Q", "herald.sms"],  # HERALD_METRICS_PORT=0: nothing to ask
    ],
)
def test_processes_without_a_port_are_healthy_while_alive(env: dict[str, str], command: list[str]) -> None:
    result = healthcheck(env, "tini", "--", *command)
    assert result.returncode == 0, result.stdout
    assert "alive" in result.stdout


def test_flower_is_unhealthy_when_nothing_answers(env: dict[str, str]) -> None:
    result = healthcheck(
        {**env, "HERALD_FLOWER_PASSWORD": "pw"}, "herald", "flower", "--port", str(free_port())
    )
    assert result.returncode == 1
    assert "/healthcheck" in result.stdout
