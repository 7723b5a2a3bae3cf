"""Real servers for the integration tests: a redis-server on a free port, herald workers.

The session starts one redis-server (AOF on, its own temporary directory), one `herald worker`
subprocess and one `herald scheduler`, all sharing a clock-offset file so a test can move
their time forward without sleeping. Each test uses fresh reminder ids, so tests never see
each other's work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from herald.config import Settings
from herald.embedded import EmbeddedRedisError, free_port, start_redis
from herald.producer import Producer

pytestmark = pytest.mark.integration

READY_TIMEOUT = 60.0
OUTCOME_TIMEOUT = 30.0


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy (a process or a result to appear)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Herald:
    """The running system under test and helpers to drive it."""

    url: str
    env: dict[str, str]
    outbox: Path
    clock_file: Path
    logs: Path
    root: Path

    def settings(self) -> Settings:
        return Settings(redis_url=self.url, outbox_dir=self.outbox, templates_dir=self.root / "templates")

    def producer(self) -> Producer:
        return Producer(self.settings())

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def shift_clock(self, seconds: float) -> None:
        """Move every herald process's clock to ``seconds`` from real time."""
        self.clock_file.write_text(f"{seconds}")

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "herald.cli", *args],
            env=self.env,
            cwd=self.root,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def outbox_lines(self, channel: str, reminder_id: str) -> list[dict[str, Any]]:
        path = self.outbox / f"{channel}.jsonl"
        if not path.exists():
            return []
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        return [line for line in lines if line["reminder_id"] == reminder_id]

    def delivery(self, key: str) -> dict[str, str]:
        return self.redis().hgetall(f"herald:d:{key}")

    def wait_outcome(self, key: str, timeout: float = OUTCOME_TIMEOUT) -> dict[str, str]:
        """Wait for a delivery to reach its outcome; returns its state hash."""
        return wait_until(
            lambda: (d := self.delivery(key)).get("outcome") and d, timeout, f"outcome of {key}"
        )

    def wait_state(self, key: str, state: str, timeout: float = OUTCOME_TIMEOUT) -> dict[str, str]:
        return wait_until(
            lambda: (d := self.delivery(key)).get("state") == state and d, timeout, f"{key} {state}"
        )


def make_reminder(**overrides: Any) -> dict[str, Any]:
    """A valid overdue notice on all three channels with a fresh id, dates relative to now."""
    today = datetime.now(UTC).date()
    reminder: dict[str, Any] = {
        "id": f"t-{uuid.uuid4().hex[:12]}",
        "account_id": "acct-1029",
        "kind": "overdue_notice",
        "channels": ["sms", "email", "push"],
        "to": {
            "phone": "+8613800138000",
            "email": "li.wei@example.cn",
            "push_tokens": ["device-token-0001"],
            "locale": "zh-CN",
            "timezone": "Asia/Shanghai",
        },
        "data": {
            "borrower_name": "李伟",
            "loan_ref": "HL-2026-0001",
            "installment_no": 4,
            "installment_count": 12,
            "amount_due": "1234.50",
            "late_fee": "12.00",
            "currency": "CNY",
            "due_date": (today - timedelta(days=9)).isoformat(),
            "days_overdue": 9,
            "service_phone": "95188",
        },
    }
    reminder.update(overrides)
    return reminder


def _start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("redis")
    port = free_port()
    try:
        proc = start_redis(port, data, data / "redis.log")
    except EmbeddedRedisError as exc:
        pytest.fail(str(exc))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def herald(redis_server: str, tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    home = tmp_path_factory.mktemp("herald")
    clock_file = home / "clock-offset"
    clock_file.write_text("0")
    logs = home / "log"
    logs.mkdir()
    env = {
        **os.environ,
        "HERALD_REDIS_URL": redis_server,
        "HERALD_OUTBOX_DIR": str(home / "outbox"),
        "HERALD_TEMPLATES_DIR": str(repo_root / "templates"),
        "HERALD_CLOCK_OFFSET_FILE": str(clock_file),
        "HERALD_SCHEDULER_INTERVAL": "0.1",
        "PYTHONUNBUFFERED": "1",
    }
    system = Herald(redis_server, env, home / "outbox", clock_file, logs, repo_root)
    worker_log = logs / "worker.log"
    worker = _start(
        [sys.executable, "-m", "herald.cli", "worker", "-n", "test@%h", "--concurrency", "2"],
        env,
        worker_log,
        repo_root,
    )
    scheduler = _start(
        [sys.executable, "-m", "herald.cli", "scheduler"], env, logs / "scheduler.log", repo_root
    )

    def ready() -> bool:
        assert worker.poll() is None, f"worker exited: {worker_log.read_text()[-3000:]}"
        return "ready." in worker_log.read_text(errors="replace")

    wait_until(ready, READY_TIMEOUT, "the worker to be ready")
    os.environ["HERALD_CLOCK_OFFSET_FILE"] = str(clock_file)  # the test process shares the clock
    yield system
    os.environ.pop("HERALD_CLOCK_OFFSET_FILE", None)
    for proc in (scheduler, worker):
        _stop(proc)


@pytest.fixture
def system(herald: Herald) -> Iterator[Herald]:
    """The running system, with its clock put back to real time after the test."""
    yield herald
    herald.shift_clock(0)
