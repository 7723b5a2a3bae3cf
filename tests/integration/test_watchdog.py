"""The consumption watchdog on real worker processes: a worker whose broker connection went deaf
exits, its supervisor starts a fresh one, and the fresh one drains the queue.

A system of its own: redis-server behind a TCP proxy that can freeze every connection open
through it (tests/freezeproxy.py), and `herald worker --processes 2` connected through the
proxy. Freezing leaves each worker process alive, heartbeating on a new connection, and deaf
to its queues on the old one — the state celery#10205 describes. Time is shifted across the
processes, never slept through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald import clock
from herald.config import Settings
from herald.intake.producer import Producer
from herald.ops.health import check_health
from herald.ops.heartbeat import INDEX, live_workers
from herald.ops.stack import LocalStack
from herald.ops.watchdog import EXIT_STALLED, EXITS
from tests.freezeproxy import FreezingProxy
from tests.harness import (
    READY_TIMEOUT,
    make_reminder,
    wait_until,
    write_clock_offset,
)

pytestmark = pytest.mark.integration

STALL = 60  # HERALD_WATCHDOG_STALL for this system


class Deaf:
    """The system: redis-server, the proxy, the worker processes, and a shared clock file."""

    def __init__(self, home: Path, root: Path) -> None:
        self.home, self.root = home, root
        self.stack = LocalStack(home, cwd=root)
        self.url = self.stack.start_redis(initialize="tests")  # the test's own, direct
        assert self.stack.redis is not None
        self.proxy = FreezingProxy(self.stack.redis.port)
        self.clock_file = home / "clock-offset"
        write_clock_offset(self.clock_file, 0)
        self.worker_log = self.stack.log_path("worker")
        self.env = self.stack.configure(
            {
                "HERALD_REDIS_URL": f"redis://127.0.0.1:{self.proxy.port}/0",  # the workers go through it
                "HERALD_TEMPLATES_DIR": str(root / "templates"),
                "HERALD_CLOCK_OFFSET_FILE": str(self.clock_file),
                "HERALD_SEND_WINDOW": "00:00-24:00",
                "HERALD_CAPS": "",
                "HERALD_DUPLICATE_WINDOW": "0",
                "HERALD_METRICS_PORT": "0",
                "HERALD_HEARTBEAT_INTERVAL": "0.5",
                "HERALD_WATCHDOG_STALL": str(STALL),
            }
        )
        self.worker = self.stack.spawn("worker", ["worker", "--processes", "2", "-n", "deaf@%h"])

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def producer(self) -> Producer:
        return Producer(
            Settings(
                redis_url=self.url, templates_dir=self.root / "templates", outbox_dir=self.home / "outbox"
            )
        )

    def log(self) -> str:
        return self.worker_log.read_text(errors="replace")

    def pids(self) -> set[int]:
        return {w.pid for w in live_workers(redis.Redis.from_url(self.url))}

    def outcome(self, key: str) -> str:
        return self.redis().hget(f"herald:d:{key}", "outcome") or ""

    def outbox_count(self, reminder_id: str, channel: str = "*") -> int:
        """Lines for ``reminder_id`` in the outbox of ``channel`` (every channel by default)."""
        count = 0
        for path in (self.home / "outbox").glob(f"{channel}.jsonl"):
            count += sum(reminder_id in line for line in path.read_text().splitlines())
        return count

    def watched_at(self) -> dict[int, float]:
        """When each live process's watchdog last looked (from its heartbeat)."""
        client = self.redis()
        seen: dict[int, float] = {}
        for key in client.smembers(INDEX):
            h = client.hgetall(key)
            if h.get("watched_at"):
                seen[int(h["pid"])] = float(h["watched_at"])
        return seen

    def close(self) -> None:
        self.proxy.thaw()
        self.stack.stop()
        self.proxy.close()
        self.stack.close()


@pytest.fixture
def deaf(tmp_path: Path, repo_root: Path) -> Iterator[Deaf]:
    system = Deaf(tmp_path, repo_root)
    try:
        yield system
    finally:
        system.close()


def test_a_worker_deaf_to_its_queues_exits_and_its_replacement_drains_them(deaf: Deaf) -> None:
    def watching() -> bool:
        assert deaf.worker.poll() is None, deaf.log()[-3000:]
        beats = live_workers(redis.Redis.from_url(deaf.url))
        return len(beats) == 2 and all(b.queued is not None for b in beats)  # watchdogs report

    wait_until(watching, READY_TIMEOUT, "two worker processes with their watchdogs")
    before = make_reminder(channels=["sms"])
    deaf.producer().enqueue(before)
    wait_until(lambda: deaf.outcome(f"{before['id']}:sms") == "sent", 30, "a delivery before the fault")
    old = deaf.pids()

    assert deaf.proxy.freeze() > 0  # every connection the workers hold goes deaf
    direct = deaf.redis()
    # a BRPOP already at Redis ends within its 1 s timeout; after that nothing can pop the work
    wait_until(lambda: int(direct.info("clients")["blocked_clients"]) == 0, 10, "no BRPOP in flight")
    reminder = make_reminder(channels=["sms", "email"])
    deaf.producer().enqueue(reminder)
    keys = [f"{reminder['id']}:{c}" for c in ("sms", "email")]

    def seen_waiting() -> bool:
        beats = [b for b in live_workers(redis.Redis.from_url(deaf.url)) if b.pid in old]
        return len(beats) == 2 and all(b.waiting_since is not None and b.queued for b in beats)

    wait_until(seen_waiting, 30, "both watchdogs to see the work waiting")
    assert all(deaf.outcome(k) == "" for k in keys)  # alive, heartbeating, and not consuming
    assert deaf.worker.poll() is None

    write_clock_offset(deaf.clock_file, STALL + 30)  # the work has now waited longer than the stall
    for key in keys:
        wait_until(lambda k=key: deaf.outcome(k) == "sent", 90, f"{key} sent by a fresh process")
    assert deaf.worker.poll() is None  # the supervisor kept running and restarted its processes
    assert not deaf.pids() & old

    log = deaf.log()
    assert "consumption watchdog" in log
    assert "taken none for" in log
    assert f"exited with {EXIT_STALLED}" in log
    exits = direct.xrange(EXITS)
    assert {int(fields["pid"]) for _, fields in exits} == old
    assert all("herald.intake" in fields["queues"] for _, fields in exits)

    health = check_health(redis.Redis.from_url(deaf.url), stall=120)
    assert health.watchdog_exits == 2
    assert health.last_watchdog_exit is not None
    assert int(health.last_watchdog_exit["queued"]) >= 1
    assert deaf.outbox_count(reminder["id"]) == 2


def test_a_quiet_worker_with_empty_queues_keeps_running(deaf: Deaf) -> None:
    def watching() -> bool:
        assert deaf.worker.poll() is None, deaf.log()[-3000:]
        beats = live_workers(redis.Redis.from_url(deaf.url))
        return len(beats) == 2 and all(b.queued == 0 for b in beats)

    wait_until(watching, READY_TIMEOUT, "two idle worker processes with their watchdogs")
    old = deaf.pids()
    write_clock_offset(deaf.clock_file, 10 * STALL)  # a long quiet time: nothing waits, nothing to do
    shifted = clock.time()

    def looked_after(since: float) -> dict[int, float] | None:
        seen = deaf.watched_at()
        return seen if set(seen) == old and all(t > since for t in seen.values()) else None

    first = wait_until(lambda: looked_after(shifted), 30, "the watchdogs to look after the shift")
    wait_until(lambda: looked_after(max(first.values())), 30, "the watchdogs to look once more")
    assert deaf.pids() == old
    assert deaf.redis().xlen(EXITS) == 0


def test_after_its_redis_connections_are_reset_a_worker_drains_its_queue(deaf: Deaf) -> None:
    wait_until(lambda: len(deaf.pids()) == 2, READY_TIMEOUT, "two worker processes")
    direct = deaf.redis()
    mine = int(direct.client_id())
    # every connection but the test's own: the workers' broker, state and heartbeat connections
    killed = sum(
        int(direct.execute_command("CLIENT", "KILL", "ID", int(c["id"])))
        for c in direct.client_list()
        if int(c["id"]) != mine
    )
    assert killed > 0
    reminder = make_reminder(channels=["sms", "email"])
    deaf.producer().enqueue(reminder)
    keys = [f"{reminder['id']}:{c}" for c in ("sms", "email")]

    def drained() -> bool:
        assert deaf.worker.poll() is None, deaf.log()[-3000:]
        return all(deaf.outcome(k) == "sent" for k in keys)

    # Either the workers reconnected and drain the queue, or one reconnected but consumes
    # nothing (celery#10205) and, with the work now waiting longer than the stall, its
    # watchdog makes it exit and the supervisor starts a fresh one that does.
    write_clock_offset(deaf.clock_file, STALL + 30)
    wait_until(drained, 90, "the queue drained after the reset")
    assert deaf.outbox_count(reminder["id"], "sms") == 1
    assert deaf.outbox_count(reminder["id"], "email") == 1
