"""deploy/healthcheck.py (the image's HEALTHCHECK) against real herald processes.

A real `herald api` and a real `herald worker` host with its /metrics behind a token, on a real
redis-server: healthy while they answer, unhealthy once they are gone; the processes without a
port are healthy while alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.ops.embedded import free_port, start_redis
from tests.deploy.support import DEPLOY
from tests.harness import wait_until

pytestmark = pytest.mark.integration

SCRIPT = DEPLOY / "healthcheck.py"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("healthcheck")
    port = free_port()
    proc = start_redis(port, home / "redis", home / "redis.log")
    try:
        yield {
            **os.environ,
            "HERALD_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "HERALD_TEMPLATES_DIR": str(repo_root / "templates"),
            "HERALD_OUTBOX_DIR": str(home / "outbox"),
            "HERALD_LEDGER_URL": f"sqlite:///{home / 'ledger.sqlite3'}",
            "HERALD_METRICS_TOKEN": "scrape-token-for-tests",
            "HERALD_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def healthcheck(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *command], env=env, capture_output=True, text=True, timeout=60
    )


def _start(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_api_is_healthy_while_it_serves_its_openapi(
    env: dict[str, str], tmp_path: Path, repo_root: Path
) -> None:
    port = free_port()
    api = _start(
        [sys.executable, "-m", "herald.cli", "api", "--port", str(port)], env, tmp_path / "api.log", repo_root
    )
    try:
        wait_until(
            lambda: (
                api.poll() is not None
                or healthcheck(env, "herald", "api", "--port", str(port)).returncode == 0
            ),
            60,
            "the API to answer",
        )
        assert api.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
        ok = healthcheck(env, "tini", "--", "herald", "api", "--port", str(port))
        assert ok.returncode == 0, ok.stdout
        assert "openapi.json answered 200" in ok.stdout
        # /healthz answers 503 here (no worker runs): the API's liveness does not depend on it
        defaults = {**env, "HERALD_API_PORT": str(port)}
        assert healthcheck(defaults, "herald", "api").returncode == 0
    finally:
        _stop(api)
    gone = healthcheck(env, "herald", "api", "--port", str(port))
    assert gone.returncode == 1
    assert gone.stdout.startswith("unhealthy:")


def test_a_worker_host_is_healthy_while_its_metrics_answer(
    env: dict[str, str], tmp_path: Path, repo_root: Path
) -> None:
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
    worker = _start(
        [sys.executable, "-m", "herald.cli", *command[1:]], worker_env, tmp_path / "w.log", repo_root
    )
    try:
        wait_until(
            lambda: worker.poll() is not None or healthcheck(worker_env, *command).returncode == 0,
            90,
            "the worker host's /metrics",
        )
        assert worker.poll() is None, (tmp_path / "w.log").read_text()[-3000:]
        without_token = {k: v for k, v in worker_env.items() if k != "HERALD_METRICS_TOKEN"}
        refused = healthcheck(without_token, *command)
        assert refused.returncode == 1
        assert "401" in refused.stdout  # the check sends the token; without it the host refuses
    finally:
        _stop(worker)
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
