"""The running system for integration suites: a redis-server on a free port, herald workers.

The session starts one redis-server (AOF on, its own temporary directory), one `herald worker`
subprocess and one `herald scheduler`, all sharing a clock-offset file so a test can move
their time forward without sleeping. Each test uses fresh reminder ids, so tests never see
each other's work.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from celery import Celery
from kombu.transport.redis import Channel as KombuChannel

from herald.clock import time as clock_now
from herald.config import Settings
from herald.delivery.scheduler import Scheduler
from herald.intake.producer import Producer
from herald.ops.embedded import EmbeddedRedis, free_port
from herald.ops.heartbeat import queued_messages
from herald.ops.stack import LocalStack, StackError
from herald.rendering.catalog import Catalog, cached_catalog
from herald.state import store

READY_TIMEOUT = 60.0
OUTCOME_TIMEOUT = 30.0
IDLE_LOOKS = 3
"""Consecutive looks that must find nothing in flight before the system counts as idle: one
look could fall between a worker's pop of a message and its record in kombu's ``unacked``
hash, or between the scheduler taking due keys off its set and publishing them."""


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


def write_clock_offset(path: Path, seconds: float) -> None:
    """Set the clock-offset file that herald processes read (``HERALD_CLOCK_OFFSET_FILE``).

    The number is written to a temporary file beside it that then replaces it (``os.replace``),
    so no process ever reads a half-written or empty file (which it would take for offset 0).
    The new file's modification time is later than the old one's even within the file
    system's timestamp granularity: readers re-read the file when its size or mtime changes.
    """
    try:
        previous = path.stat().st_mtime_ns
    except FileNotFoundError:
        previous = 0
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(f"{seconds}")
        mtime = max(time.time_ns(), previous + 1_000)
        os.utime(staged, ns=(mtime, mtime))
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


@contextmanager
def redis_of_its_own(home: Path, *, initialized: bool = True) -> Iterator[str]:
    """A redis-server in ``home`` for a test module or session (no worker on it); its URL.

    ``initialized``: the hold store's marker is set, so the guards do not hold everything back.
    """
    stack = LocalStack(home)
    try:
        yield stack.start_redis(initialize="tests" if initialized else "")
    finally:
        stack.close()


class Unpublished(Producer):
    """Stores reminders and publishes nothing: a broker that lost the messages, or a test that
    runs the pipeline itself."""

    def publish(self, deliveries: list[str], categories: dict[str, str] | None = None) -> None:
        """Nothing is published."""


class HeldBackProducer(Producer):
    """Stores reminders but keeps their messages back, as a queue no worker reads would;
    ``release`` publishes them."""

    held: list[str]

    def publish(self, deliveries: list[str], categories: dict[str, str] | None = None) -> None:
        self.held = [*getattr(self, "held", []), *deliveries]

    def release(self) -> None:
        Producer.publish(self, self.held)
        self.held = []


def claim_only(settings: Settings, key: str) -> str:
    """Take one stored delivery through the pipeline up to its claim, as a worker would just
    before its provider call, and stop there (the claim's answer: ``claimed`` or why not)."""
    from herald.delivery.pipeline import BatchReport, claim, load
    from herald.delivery.runtime import Runtime
    from herald.models import split_delivery_key

    async def go() -> str:
        rt = Runtime(settings)
        try:
            batch = await load(rt, split_delivery_key(key)[1], [key], BatchReport())
            if not batch:
                return "not loaded"
            return (await claim(rt, batch))[key][0]
        finally:
            await rt.close()

    return asyncio.run(go())


def make_in_doubt(settings: Settings, *, account: str | None = None) -> str:
    """A delivery really in doubt, as when its worker died between the claim and the record:
    stored, claimed (:func:`claim_only`), then its lease ended with no result and the scheduler's
    sweep settled it ``in_doubt``. Its key.

    The sweep runs in this process with its clock moved past the lease (``HERALD_CLOCK_OFFSET``,
    put back after); nothing is published, so no worker touches the delivery.
    """
    reminder = make_reminder(channels=["sms"])
    if account is not None:
        reminder["account_id"] = account
    Unpublished(settings).enqueue(reminder)
    key = f"{reminder['id']}:sms"
    claimed = claim_only(settings, key)
    assert claimed == "claimed", f"the claim of {key} answered {claimed!r} (a hold on its account?)"
    client = redis.Redis.from_url(settings.redis_url)
    before = os.environ.get("HERALD_CLOCK_OFFSET")
    os.environ["HERALD_CLOCK_OFFSET"] = str(settings.lease_seconds + 60)  # the lease has ended
    try:
        settled = Scheduler(settings, Celery("unused"), client).expire_leases()
    finally:
        if before is None:
            os.environ.pop("HERALD_CLOCK_OFFSET", None)
        else:
            os.environ["HERALD_CLOCK_OFFSET"] = before
    assert key in settled
    assert client.hget(store.delivery_redis_key(key), "outcome") == b"in_doubt"
    return key


@dataclass
class Herald:
    """The running system under test and helpers to drive it."""

    url: str
    env: dict[str, str]
    outbox: Path
    clock_file: Path
    logs: Path
    root: Path
    stack: LocalStack
    api_url: str = ""

    @property
    def redis_server(self) -> EmbeddedRedis:
        """Its redis-server, to stop and start again."""
        assert self.stack.redis is not None
        return self.stack.redis

    def settings(self) -> Settings:
        """The settings the system's processes run with (what in-process pipelines must share
        with them: the send window, caps and duplicate window included)."""
        return Settings(
            redis_url=self.url,
            outbox_dir=self.outbox,
            templates_dir=self.root / "templates",
            ledger_url=self.env["HERALD_LEDGER_URL"],
            send_window=self.env["HERALD_SEND_WINDOW"],
            caps=self.env["HERALD_CAPS"],
            duplicate_window=int(self.env["HERALD_DUPLICATE_WINDOW"]),
        )

    def producer(self) -> Producer:
        return Producer(self.settings())

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def shift_clock(self, seconds: float) -> None:
        """Move every herald process's clock to ``seconds`` from real time."""
        write_clock_offset(self.clock_file, seconds)

    def in_flight(self) -> dict[str, int]:
        """Work the system still holds (empty when none): messages waiting in each herald queue
        (kombu's priority lists included), messages a worker took and has not acknowledged
        (kombu's ``unacked`` hash) and deliveries claimed and being sent (``herald:leases``)."""
        client = self.redis()
        busy = {queue: n for queue, n in queued_messages(client).items() if n}
        for name, count in (
            ("unacked", client.hlen(KombuChannel.unacked_key)),
            ("leases", client.zcard(store.LEASES)),
        ):
            if count:
                busy[name] = int(count)
        return busy

    def wait_idle(self, timeout: float = OUTCOME_TIMEOUT) -> None:
        """Wait until every message published so far was handled and acknowledged.

        A task is acknowledged after its work (``acks_late``) and the intake task publishes
        to the channel queues before it returns, so when nothing is in flight (see
        :meth:`in_flight`) on :data:`IDLE_LOOKS` looks in a row, every send those messages
        caused is in the outbox and in Redis. Deliveries waiting in the scheduler are not work
        in flight.
        """
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            busy = self.in_flight()
            quiet = 0 if busy else quiet + 1
            if quiet >= IDLE_LOOKS:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for the system to be idle: {busy}"
                )
            time.sleep(0.05)

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "herald.cli", *args],
            env={**self.env, "COLUMNS": "250"},
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

    def wait_until_settled(self, key: str, timeout: float = OUTCOME_TIMEOUT) -> dict[str, str]:
        """Wait until a delivery has an outcome or waits in the scheduler."""

        def settled() -> dict[str, str] | None:
            d = self.delivery(key)
            return d if d.get("outcome") or d.get("state") in ("scheduled", "retrying") else None

        return wait_until(settled, timeout, f"{key} to settle")

    def wait_count_sent(self, keys: list[str], count: int, *, settle: bool = False) -> int:
        """Wait until ``count`` of ``keys`` are sent; with ``settle``, also until no more move."""

        def sent() -> int:
            return sum(self.delivery(k).get("outcome") == "sent" for k in keys)

        wait_until(lambda: sent() >= count, OUTCOME_TIMEOUT, f"{count} sent")
        if settle:  # every delivery that came due was looked at: none is left in a queue
            wait_until(
                lambda: all(
                    float(self.delivery(k).get("due") or 0) > clock_now() or self.delivery(k).get("outcome")
                    for k in keys
                ),
                OUTCOME_TIMEOUT,
                "the due deliveries to be handled",
            )
        return sent()

    def wait_state(self, key: str, state: str, timeout: float = OUTCOME_TIMEOUT) -> dict[str, str]:
        return wait_until(
            lambda: (d := self.delivery(key)).get("state") == state and d, timeout, f"{key} {state}"
        )


def make_reminder(**overrides: Any) -> dict[str, Any]:
    """A valid reminder with a fresh id, dates relative to now: the one builder of test (and
    bench) reminders. By default an overdue notice on all three channels; with another known
    ``kind`` and no ``data``, that kind's ``example.json`` (its dates made relative to today)."""
    today = datetime.now(UTC).date()
    kind = overrides.get("kind", "overdue_notice")
    data: dict[str, Any] = {
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
    }
    if kind != "overdue_notice" and "data" not in overrides:
        known = _catalog().kinds.get(kind)
        if known is not None:
            data = known.example_data(today)
    reminder: dict[str, Any] = {
        "id": f"t-{uuid.uuid4().hex[:12]}",
        "account_id": "acct-1029",
        "kind": kind,
        "channels": ["sms", "email", "push"],
        "to": {
            "phone": "+8613800138000",
            "email": "li.wei@example.cn",
            "push_tokens": ["device-token-0001"],
            "locale": "zh-CN",
            "timezone": "Asia/Shanghai",
        },
        "data": data,
    }
    reminder.update(overrides)
    return reminder


def _catalog() -> Catalog:
    """The project's own template catalog (read once)."""
    return cached_catalog(Path(__file__).resolve().parents[1] / "templates")


@contextmanager
def running_herald(
    home: Path, root: Path, extra_env: dict[str, str] | None = None, *, api: bool = False
) -> Iterator[Herald]:
    """Start redis-server, a worker, the scheduler (and the API) on ``home``; stop them after."""
    stack = LocalStack(home, cwd=root)
    try:
        url = stack.start_redis(initialize="tests")
        clock_file = home / "clock-offset"
        write_clock_offset(clock_file, 0)
        env = stack.configure(
            {
                "HERALD_TEMPLATES_DIR": str(root / "templates"),
                "HERALD_CLOCK_OFFSET_FILE": str(clock_file),
                "HERALD_SCHEDULER_INTERVAL": "0.1",
                "HERALD_SEND_WINDOW": "00:00-24:00",  # suites that test the window or caps set their own
                "HERALD_CAPS": "",
                "HERALD_DUPLICATE_WINDOW": "0",
                "HERALD_METRICS_PORT": "0",  # suites that scrape the worker host give it a free port
                **(extra_env or {}),
            }
        )
        system = Herald(url, env, home / "outbox", clock_file, stack.logs, root, stack)
        stack.spawn("worker", ["worker", "--processes", "2", "-n", f"test-{system.redis_server.port}@%h"])
        stack.spawn("scheduler", ["scheduler"])
        if api:
            api_port = int(env.get("HERALD_API_PORT", "0")) or free_port()
            env["HERALD_API_PORT"] = str(api_port)
            stack.spawn("api", ["api", "--port", str(api_port)])
            system.api_url = f"http://127.0.0.1:{api_port}"
        try:
            stack.wait_ready(2, READY_TIMEOUT)
            if api:
                wait_until(
                    lambda: "Application startup complete" in stack.log("api"), READY_TIMEOUT, "the API"
                )
        except StackError as exc:
            pytest.fail(str(exc))
        outer_clock = os.environ.get("HERALD_CLOCK_OFFSET_FILE")
        os.environ["HERALD_CLOCK_OFFSET_FILE"] = str(clock_file)  # the test process shares the clock
        try:
            yield system
        finally:
            if outer_clock is None:
                os.environ.pop("HERALD_CLOCK_OFFSET_FILE", None)
            else:  # a system started inside another gives the outer one its clock back
                os.environ["HERALD_CLOCK_OFFSET_FILE"] = outer_clock
    finally:
        stack.close()
