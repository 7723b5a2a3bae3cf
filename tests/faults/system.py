"""The real system the fault suite breaks: every herald process, redis-server and the Twilio stand-in.

One `FaultSystem` per scenario, on its own directory:

- redis-server with AOF (``appendfsync everysec``, as deploy/redis.conf), optionally behind a
  `Partition` proxy that herald's processes connect through (the test's own clients never do);
- ``herald worker --processes 2`` (a supervisor and two Celery worker processes), ``herald
  scheduler``, ``herald reconcile`` every second, and ``herald ledger`` where a fault needs the
  ledger (``herald suppress rebuild`` reads it);
- the Twilio stand-in (tests/standins/twilio.py), which records every request it accepts by
  recipient: the suite's outside view of what was sent;
- a clock-offset file shared by every herald process and the test, so that leases, retries,
  scheduled times and the reconciler's deadlines come due without waiting for them.

Every setting that decides recovery is at its default: the visibility timeout (an hour: the
broker's own redelivery of a dead worker's messages never comes within a scenario) and the hold
(`HOLD` s: a dead process's taken deliveries and leases lapse after it). A crash is recovered
within a clock advance of `HOLD` plus a few seconds, the 90 s herald promises.

Clock shifts are only made when the system is quiet (`wait_quiet`): no message in a queue, no
request at the stand-in, nothing due, and every lease left is one a crash left behind (it was
in ``herald:leases`` right after a fault the test caused). A shift can then end no lease of a
delivery that a live process is still sending, so every ``in_doubt`` the suite sees comes from
a crash (or, in the hang scenario, from a request the stand-in held back).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from herald import clock
from herald.config import Settings
from herald.intake.producer import Producer
from herald.ops.embedded import EmbeddedRedis
from herald.ops.heartbeat import queued_messages
from herald.ops.stack import LocalStack
from herald.state import store
from tests.faults.partition import Partition
from tests.harness import READY_TIMEOUT, wait_until, write_clock_offset
from tests.standins.twilio import FakeTwilio

VISIBILITY = Settings().visibility_timeout
"""The default visibility timeout (Settings().visibility_timeout): a published message's deadline
for the reconciler."""
HOLD = 60
"""The default HERALD_HOLD_SECONDS: a dead process's deliveries are back in work after it."""
PROVIDER_TIMEOUT = 5.0
"""HERALD_PROVIDER_TIMEOUT: an answer held back longer makes the request ambiguous."""
SENDER = "+15005550006"
QUIET_TIMEOUT = 90.0
STEPS = (HOLD + 15, HOLD + 15, HOLD + 15, VISIBILITY + 15)
"""Seconds the clock moves in the drain's rounds (the last one repeated): first, in steps within
the 90 s herald promises, past every hold and lease a crash left, the reminders' ``not_before``
and the first retries; only then past a broker deadline (a message lost in the broker itself).
Steps shorter than the visibility timeout keep deliveries that wait in a queue from looking
lost to the reconciler."""


@dataclass
class Crash:
    """A fault the test caused, and the deliveries under a lease right after it."""

    what: str
    leases: set[str]


@dataclass
class FaultSystem:
    """The running system of one scenario (see the module docstring); use :func:`fault_system`."""

    name: str
    home: Path
    root: Path
    partition: bool = False
    ledger: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    twilio: FakeTwilio = field(default_factory=lambda: FakeTwilio(latency=0.02))
    crashes: list[Crash] = field(default_factory=list)
    offset: float = 0.0
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    """Run first by :meth:`close` (the scenario's load registers its stop here)."""
    broker_waits: dict[str, float] = field(default_factory=dict)
    """Deliveries still without an outcome when the drain first moved the clock past a
    visibility timeout, by the seconds then left to their deadline."""

    def __post_init__(self) -> None:
        self.stack = LocalStack(self.home, cwd=self.root)
        self.proxy: Partition | None = None
        self.clock_file = self.home / "clock-offset"
        write_clock_offset(self.clock_file, 0)

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """The latest process under each name."""
        return self.stack.procs

    @property
    def env(self) -> dict[str, str]:
        """The herald processes' environment."""
        return self.stack.env

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The test's own, direct connection to redis-server (never through the partition)."""
        return self.stack.url

    def start(self) -> None:
        self.stack.start_redis(initialize="fault-suite")
        self.twilio.start()
        herald_url = self.url
        if self.partition:
            self.proxy = Partition(self.server.port)
            herald_url = f"redis://127.0.0.1:{self.proxy.port}/0"
        self.stack.configure(
            {
                "HERALD_REDIS_URL": herald_url,
                "HERALD_TEMPLATES_DIR": str(self.root / "templates"),
                "HERALD_CLOCK_OFFSET_FILE": str(self.clock_file),
                "HERALD_LEDGER_POLL_INTERVAL": "0.2",
                "HERALD_SMS_PROVIDER": "twilio",
                "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
                "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
                "HERALD_TWILIO_FROM": SENDER,
                "HERALD_TWILIO_API_BASE": self.twilio.url,
                "HERALD_PROVIDER_TIMEOUT": str(PROVIDER_TIMEOUT),
                "HERALD_CONNECT_TIMEOUT": "2",
                "HERALD_RATE_SMS": "off",
                "HERALD_SEND_WINDOW": "00:00-24:00",
                "HERALD_CAPS": "",
                "HERALD_DUPLICATE_WINDOW": "0",
                "HERALD_SCHEDULER_INTERVAL": "0.2",
                "HERALD_RECONCILE_INTERVAL": "1",
                "HERALD_RECONCILE_RATE": "1000",
                "HERALD_HEARTBEAT_INTERVAL": "1",
                "HERALD_METRICS_PORT": "0",
                **self.extra_env,
            }
        )
        self.start_worker()
        self.start_process("scheduler")
        self.start_process("reconcile")
        if self.ledger:
            self.start_process("ledger")
        self.wait_ready(2)

    @property
    def server(self) -> EmbeddedRedis:
        """The redis-server."""
        assert self.stack.redis is not None
        return self.stack.redis

    @property
    def logs(self) -> Path:
        """Where every process writes its log."""
        return self.stack.logs

    def close(self) -> None:
        """Stop everything this system started (orphaned worker processes too)."""
        for cleanup in self.cleanups:
            cleanup()
        if self.proxy is not None:
            self.proxy.heal()
        self.stack.stop()
        if self.proxy is not None:
            self.proxy.close()
        self.server.stop()
        self.twilio.stop()

    # -- herald's processes ----------------------------------------------------------------

    def start_worker(self) -> subprocess.Popen[bytes]:
        """``herald worker --processes 2`` (a supervisor and two Celery worker processes)."""
        return self.stack.spawn("worker", ["worker", "--processes", "2", "-n", f"{self.name}@%h"])

    def start_process(self, name: str) -> subprocess.Popen[bytes]:
        """``herald scheduler``, ``herald reconcile`` or ``herald ledger``."""
        return self.stack.spawn(name, [name])

    def log(self, name: str) -> str:
        return self.stack.log(name)

    def ready_count(self) -> int:
        """How many Celery worker processes have started consuming so far (restarts included)."""
        return self.stack.ready_workers()

    def wait_ready(self, total: int) -> None:
        self.stack.wait_ready(total, READY_TIMEOUT)

    def supervisor(self) -> psutil.Process:
        return psutil.Process(self.procs["worker"].pid)

    def worker_processes(self) -> list[psutil.Process]:
        """The Celery worker processes of the running supervisor."""
        return [p for p in self.supervisor().children() if p.is_running()]

    def all_worker_processes(self) -> list[psutil.Process]:
        """Every Celery worker process alive, orphans of a killed supervisor included."""
        found = []
        for proc in psutil.process_iter(["cmdline", "environ", "status"]):
            try:
                cmdline = proc.info["cmdline"] or []
                env = proc.info["environ"] or {}
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if "celery" in cmdline and env.get("HERALD_CLOCK_OFFSET_FILE") == str(self.clock_file):
                found.append(proc)
        return found

    @staticmethod
    def stopped(procs: list[psutil.Process]) -> bool:
        """Whether every one of ``procs`` has exited (a zombie not reaped yet counts as exited)."""
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                continue
        return True

    def signal_process(self, name: str, sig: signal.Signals, within: float = 60) -> int:
        """Send ``sig`` to herald ``name``'s main process; it must exit ``within`` seconds."""
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=within)
        return proc.pid

    def kill_worker_process(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal one Celery worker process of the supervisor; wait until it is gone."""
        victim = self.worker_processes()[0]
        victim.send_signal(sig)
        victim.wait(timeout=60)
        return victim.pid

    # -- Redis ---------------------------------------------------------------------------

    def direct(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def producer(self) -> Producer:
        """An upstream service's producer, on its own direct connection."""
        settings = Settings(
            redis_url=self.url,
            templates_dir=self.root / "templates",
            ledger_url=self.env["HERALD_LEDGER_URL"],
        )
        return Producer(settings)

    def kill_redis(self, *, empty: bool = False, down_until: Callable[[], object] | None = None) -> None:
        """SIGKILL redis-server and start it again on the same port (``empty``: without its
        data), once ``down_until`` (if given) says its absence was noticed."""
        self.server.kill(empty=empty)
        if down_until is not None:
            wait_until(down_until, 60, "Redis's absence to be noticed")
        self.server.start()

    # -- observing -------------------------------------------------------------------------

    def leases(self) -> set[str]:
        return set(self.direct().zrange(store.LEASES, 0, -1))

    def note_crash(self, what: str) -> Crash:
        """Record a fault and the deliveries under a lease now (their in_doubt is expected)."""
        crash = Crash(what, self.leases())
        self.crashes.append(crash)
        return crash

    def crash_leases(self) -> set[str]:
        return set().union(*(c.leases for c in self.crashes)) if self.crashes else set()

    def _quiet_view(self) -> tuple[object, ...] | None:
        """What must not move while the system is quiet; None while it is visibly busy."""
        client = self.direct()
        now = clock.time()
        if sum(queued_messages(client).values()) or self.twilio.in_flight:
            return None
        if client.zcount(store.SCHEDULED, "-inf", now) or client.zcount(store.DEADLINES, "-inf", now):
            return None
        if client.zcount(store.LEASES, "-inf", now):  # ended leases: the scheduler's sweep is due
            return None
        leases = set(client.zrange(store.LEASES, 0, -1))
        if leases - self.crash_leases():
            return None
        return (frozenset(leases), client.xlen(store.EVENTS), len(self.twilio.accepted))

    def wait_quiet(self, timeout: float = QUIET_TIMEOUT) -> None:
        """Wait until nothing moves (see the module docstring): three looks alike in a row."""
        seen: list[tuple[object, ...]] = []

        def quiet() -> bool:
            view = self._quiet_view()
            if view is None or (seen and view != seen[-1]):
                seen.clear()
            if view is not None:
                seen.append(view)
            return len(seen) >= 3

        deadline = time.monotonic() + timeout
        while not quiet():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: the system did not become quiet in {timeout:.0f} s")
            time.sleep(0.2)  # the pace of the looks; what is awaited is the condition above

    def advance(self, seconds: float) -> None:
        """Move every herald process's clock (and the test's) ``seconds`` ahead."""
        self.offset += seconds
        write_clock_offset(self.clock_file, self.offset)


@contextlib.contextmanager
def fault_system(
    name: str,
    home: Path,
    root: Path,
    *,
    partition: bool = False,
    ledger: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[FaultSystem]:
    """Start a `FaultSystem`; the test process shares its clock while it runs."""
    system = FaultSystem(name, home, root, partition=partition, ledger=ledger, extra_env=env or {})
    outer = os.environ.get("HERALD_CLOCK_OFFSET_FILE")
    try:
        system.start()
        os.environ["HERALD_CLOCK_OFFSET_FILE"] = str(system.clock_file)
        yield system
    finally:
        if outer is None:
            os.environ.pop("HERALD_CLOCK_OFFSET_FILE", None)
        else:
            os.environ["HERALD_CLOCK_OFFSET_FILE"] = outer
        system.close()
