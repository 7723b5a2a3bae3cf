"""The reconciler: accepted deliveries whose message the broker lost are re-published once their
deadline passes, at a bounded rate; waiting, claimed and finished ones never are.

Two settings: a redis-server of its own with no worker and no scheduler (so nothing else moves
a delivery while a test looks; the test moves this process's clock, which the scripts read as an
offset to Redis's, and injects the reconciler's publisher: it counts what each pass publishes),
and the session's running system (real workers and scheduler, clock shifted across processes),
where a lost delivery is sent exactly once after `herald reconcile`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from herald import clock
from herald.config import Settings
from herald.delivery.pipeline import BatchReport, Finish, Later, claim, defer, load, settle
from herald.delivery.runtime import Runtime
from herald.delivery.scheduler import Scheduler
from herald.models import Outcome
from herald.ops.reconciler import Reconciler
from herald.state import store
from herald.state.fanout import mark_queued
from herald.state.queues import make_celery
from tests.harness import (
    Herald,
    Unpublished,
    make_reminder,
    redis_of_its_own,
    wait_until,
)

pytestmark = pytest.mark.integration

VISIBILITY = 3600  # the default visibility timeout: a published delivery's deadline is this ahead
HOLD = 60  # the default hold: an unpublished (or re-published) delivery's deadline is this ahead


class Recorder:
    """A reconciler's publisher that records what each pass publishes instead of sending it,
    then hands the deliveries to the broker as publishing does (their deadline: the visibility
    timeout)."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.client: redis.Redis | None = None

    def __call__(self, keys: list[str]) -> None:
        self.passes.append(list(keys))
        if self.client is not None:
            mark_queued(self.client, keys, VISIBILITY)

    @property
    def published(self) -> list[str]:
        return [k for keys in self.passes for k in keys]


class Clock:
    """This process's clock, which the test moves: the reconciler's rate reads it, and every
    script adds its offset (``HERALD_CLOCK_OFFSET``, put back after the test) to Redis's clock.
    Starts at herald's now."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._now = clock.time()

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self._now = value
        self._monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(value - time.time()))

    def __call__(self) -> float:
        return self._now


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The test's clock."""
    return Clock(monkeypatch)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Settings]:
    """Settings on a redis-server with no worker and no scheduler."""
    home = tmp_path_factory.mktemp("reconcile")
    with redis_of_its_own(home) as url:
        yield Settings(
            redis_url=url,
            templates_dir=repo_root / "templates",
            outbox_dir=home / "outbox",
            send_window="00:00-24:00",
            caps="",
            duplicate_window=0,
            reconcile_rate=10.0,
            reconcile_interval=2.0,  # at most 20 keys a pass
        )


@pytest.fixture
def own(bare: Settings) -> Settings:
    """The bare Redis with no deadlines, schedule or leases left by an earlier test."""
    redis.Redis.from_url(bare.redis_url).delete(
        store.DEADLINES, store.SCHEDULED, store.LEASES, store.IN_DOUBT
    )
    return bare


def _lost(settings: Settings, count: int, **overrides: Any) -> list[str]:
    """``count`` accepted SMS deliveries whose messages were never published."""
    producer = Unpublished(settings)
    try:
        results = producer.enqueue_many([make_reminder(channels=["sms"], **overrides) for _ in range(count)])
    finally:
        producer.close()
    assert all(r.status == "accepted" for r in results)
    return [key for r in results for key in r.deliveries]


def _reconciler(settings: Settings, at: Clock, recorder: Recorder) -> Reconciler:
    client = redis.Redis.from_url(settings.redis_url)
    recorder.client = client
    return Reconciler(settings, make_celery(settings), client, clock=at, publish=recorder)


def _in_pipeline(settings: Settings, work: Any) -> Any:
    """Run ``work(runtime)`` with a worker's runtime: the pipeline's own Redis calls and scripts."""

    async def run() -> Any:
        rt = Runtime(settings)
        try:
            return await work(rt)
        finally:
            await rt.close()

    return asyncio.run(run())


def _claim(settings: Settings, key: str) -> dict[str, tuple[str, str]]:
    async def work(rt: Runtime) -> dict[str, tuple[str, str]]:
        batch = await load(rt, "sms", [key], BatchReport())
        verdicts: dict[str, tuple[str, str]] = await claim(rt, batch)
        return verdicts

    result: dict[str, tuple[str, str]] = _in_pipeline(settings, work)
    return result


def test_a_lost_delivery_is_republished_once_its_deadline_passed(own: Settings, at: Clock) -> None:
    (key,) = _lost(own, 1)
    recorder = Recorder()
    reconciler = _reconciler(own, at, recorder)
    client = redis.Redis.from_url(own.redis_url, decode_responses=True)

    assert key not in reconciler.reconcile_once().republished  # not overdue yet
    at.now += HOLD + 1  # never published: overdue a hold after its acceptance
    report = reconciler.reconcile_once()
    assert key in report.republished
    assert client.zscore(store.DEADLINES, key) == pytest.approx(at.now + VISIBILITY, abs=1)  # queued
    state = client.hgetall(store.delivery_redis_key(key))
    assert (state["state"], state["reconciled"]) == ("accepted", "1")

    at.now += 60  # the next passes leave it alone: its new deadline has not passed
    assert key not in reconciler.reconcile_once().republished
    at.now += VISIBILITY  # lost again: found again
    assert key in reconciler.reconcile_once().republished
    assert recorder.published.count(key) == 2


def test_the_rate_bounds_each_pass_and_every_lost_delivery_comes_out_once(own: Settings, at: Clock) -> None:
    keys = _lost(own, 45)
    recorder = Recorder()
    at.now += VISIBILITY + 1
    reconciler = _reconciler(own, at, recorder)  # 10 keys/s, 2 s interval: at most 20 a pass

    first = reconciler.reconcile_once()
    assert len(first.republished) == 20
    assert first.overdue == 25  # left for the next passes
    assert reconciler.reconcile_once().limited  # no time passed: no budget
    at.now += 0.5
    assert len(reconciler.reconcile_once().republished) == 5
    at.now += 600  # a long pause is still one burst, not a storm
    assert len(reconciler.reconcile_once().republished) == 20
    at.now += 2
    reconciler.reconcile_once()
    assert [len(p) for p in recorder.passes][:3] == [20, 5, 20]
    assert all(len(p) <= 20 for p in recorder.passes)
    assert sorted(recorder.published) == sorted(keys)  # each exactly once


def test_two_reconcilers_never_publish_the_same_key_twice(own: Settings, at: Clock) -> None:
    keys = set(_lost(own, 60))
    at.now += VISIBILITY + 1
    recorders = [Recorder(), Recorder()]
    reconcilers = [_reconciler(own.model_copy(update={"reconcile_rate": 5000.0}), at, r) for r in recorders]
    start = threading.Barrier(2)
    passes = [0, 0]
    failures: list[BaseException | None] = [None, None]

    def run(index: int) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(5):
                reconcilers[index].reconcile_once()
                passes[index] += 1
        except BaseException as exc:  # the test reports it: a thread's exception is otherwise lost
            failures[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a reconciler did not finish its passes"
    assert failures == [None, None]
    assert passes == [5, 5]  # both ran every pass, side by side
    published = [k for r in recorders for k in r.published if k in keys]
    assert sorted(published) == sorted(keys)


def test_a_delivery_waiting_in_the_scheduler_is_not_republished(own: Settings, at: Clock) -> None:
    (key,) = _lost(own, 1)
    due = clock.time() + 600

    async def work(rt: Runtime) -> list[bool]:
        result: list[bool] = await defer(rt, [Later(key, due, "not before its time")])
        return result

    assert _in_pipeline(own, work) == [True]
    recorder = Recorder()
    at.now = due + VISIBILITY + 5  # the scheduler has been down for over an hour
    reconciler = _reconciler(own, at, recorder)
    report = reconciler.reconcile_once()
    assert key not in report.republished
    assert report.waiting == 1
    client = redis.Redis.from_url(own.redis_url)
    assert client.zscore(store.SCHEDULED, key) == pytest.approx(due, abs=0.01)  # still the scheduler's
    assert client.zscore(store.DEADLINES, key) == pytest.approx(at.now + VISIBILITY, abs=1)


def test_a_delivery_being_sent_is_left_to_its_lease(own: Settings, at: Clock) -> None:
    (key,) = _lost(own, 1)
    verdict, token = _claim(own, key)[key]
    assert verdict == "claimed"
    client = redis.Redis.from_url(own.redis_url, decode_responses=True)
    lease_until = float(client.hget(store.delivery_redis_key(key), "lease_until") or 0)

    recorder = Recorder()
    at.now = lease_until - 1  # the intake deadline passed, but the claim moved it to the lease's end
    reconciler = _reconciler(own, at, recorder)
    assert key not in reconciler.reconcile_once().republished

    # The worker died after the claim and the leases index lost its entry (an AOF second lost).
    client.zrem(store.LEASES, key)
    at.now = lease_until + VISIBILITY + 1
    report = reconciler.reconcile_once()
    assert key not in report.republished
    assert report.leased == 1
    assert client.hget(store.delivery_redis_key(key), "state") == "sending"
    assert client.zscore(store.LEASES, key) == pytest.approx(lease_until)  # back for the sweep

    # The scheduler's lease sweep settles it: the provider may have had it, so it is in doubt.
    sweeper = Scheduler(own, make_celery(own), redis.Redis.from_url(own.redis_url))
    assert key in sweeper.expire_leases()
    assert client.hget(store.delivery_redis_key(key), "outcome") == Outcome.IN_DOUBT
    assert client.zscore(store.DEADLINES, key) is None
    at.now += 2 * VISIBILITY
    assert key not in reconciler.reconcile_once().republished
    assert key not in recorder.published
    assert token  # the claim's token never reached a provider here


def test_finished_and_vanished_deliveries_are_never_republished(own: Settings, at: Clock) -> None:
    done, stale = _lost(own, 2)

    async def work(rt: Runtime) -> list[bool]:
        result: list[bool] = await settle(rt, [Finish(done, Outcome.CANCELLED, "withdrawn upstream")])
        return result

    assert _in_pipeline(own, work) == [True]
    client = redis.Redis.from_url(own.redis_url)
    assert client.zscore(store.DEADLINES, done) is None  # an outcome removes the deadline
    client.zadd(store.DEADLINES, {done: 1.0})  # ...unless a lost write left a stale entry
    client.delete(store.delivery_redis_key(stale))  # expired from Redis
    recorder = Recorder()
    at.now += VISIBILITY + 1
    report = _reconciler(own, at, recorder).reconcile_once()
    assert done not in report.republished
    assert stale not in report.republished
    assert report.removed == 2
    assert client.zscore(store.DEADLINES, done) is None
    assert client.zscore(store.DEADLINES, stale) is None
    assert client.hget(store.delivery_redis_key(done), "state") == b"cancelled"


def test_the_republished_count_is_kept_for_metrics(own: Settings, at: Clock) -> None:
    client = redis.Redis.from_url(own.redis_url)
    before = int(client.hget(store.RECONCILE, "republished") or 0)
    _lost(own, 3)
    recorder = Recorder()
    at.now += VISIBILITY + 1
    report = _reconciler(own.model_copy(update={"reconcile_rate": 5000.0}), at, recorder).reconcile_once()
    assert len(report.republished) == 3
    assert int(client.hget(store.RECONCILE, "republished") or 0) == before + len(report.republished)


def test_a_lost_delivery_is_sent_exactly_once_after_herald_reconcile(system: Herald) -> None:
    lost = make_reminder(channels=["sms", "email"])
    producer = Unpublished(system.settings())
    assert producer.enqueue(lost).status == "accepted"
    sent = make_reminder(channels=["sms"])
    system.producer().enqueue(sent)
    sent_key = f"{sent['id']}:sms"
    assert system.wait_outcome(sent_key)["outcome"] == "sent"
    lost_keys = [f"{lost['id']}:{c}" for c in ("sms", "email")]
    assert all(system.delivery(k)["state"] == "accepted" for k in lost_keys)  # nothing carries them

    run = system.cli("reconcile", "--once")  # before the deadline: nothing to do for them
    assert run.returncode == 0, run.stderr
    assert all("reconciled" not in system.delivery(k) for k in lost_keys)

    system.shift_clock(VISIBILITY + 60)
    run = system.cli("reconcile", "--once")
    assert run.returncode == 0, run.stderr
    assert "re-published" in run.stdout
    for key in lost_keys:
        state = system.wait_outcome(key)
        assert (state["outcome"], state["reconciled"]) == ("sent", "1")
    assert len(system.outbox_lines("sms", lost["id"])) == 1
    assert len(system.outbox_lines("email", lost["id"])) == 1

    run = system.cli("reconcile", "--once")  # finished now: never again
    assert run.returncode == 0, run.stderr
    system.shift_clock(3 * VISIBILITY)
    assert system.cli("reconcile", "--once").returncode == 0
    assert all(system.delivery(k)["reconciled"] == "1" for k in lost_keys)
    assert "reconciled" not in system.delivery(sent_key)
    assert len(system.outbox_lines("sms", lost["id"])) == 1
    assert len(system.outbox_lines("sms", sent["id"])) == 1


def test_the_long_running_reconciler_republishes_and_stops_on_sigterm(system: Herald) -> None:
    env = {**system.env, "HERALD_RECONCILE_INTERVAL": "0.2"}
    system.stack.spawn("reconcile", ["reconcile"], env=env)
    try:
        wait_until(lambda: "reconciler started" in system.stack.log("reconcile"), 30, "the reconciler")
        lost = make_reminder(channels=["push"])
        assert Unpublished(system.settings()).enqueue(lost).status == "accepted"
        key = f"{lost['id']}:push"
        system.shift_clock(VISIBILITY + 60)
        state = system.wait_outcome(key)
        assert (state["outcome"], state["reconciled"]) == ("sent", "1")
        assert len(system.outbox_lines("push", lost["id"])) == 1
    finally:
        assert system.stack.stop_process("reconcile", signal.SIGTERM, timeout=30) == 0
    text = system.stack.log("reconcile")
    assert "re-published" in text
    assert lost["id"] not in text  # counts, never keys


def test_in_doubt_deliveries_are_listed_for_the_retention_then_dropped_from_the_list(
    own: Settings, at: Clock
) -> None:
    client = redis.Redis.from_url(own.redis_url)
    client.zadd(store.IN_DOUBT, {"old-reminder:sms": at.now - 60, "new-reminder:sms": at.now + 60})
    reconciler = _reconciler(own, at, Recorder())
    reconciler.reconcile_once()
    assert client.zcard(store.IN_DOUBT) == 2

    at.now += own.retention_days * 86400
    reconciler.reconcile_once()

    assert client.zrange(store.IN_DOUBT, 0, -1) == [b"new-reminder:sms"]
