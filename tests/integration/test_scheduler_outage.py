"""The scheduler keeps running when Redis goes away between taking due deliveries off the
scheduled set and publishing them, and the reconciler re-publishes what it could not.

The fault suite's Redis kills make this window reachable; here it is made certain: the
scheduler reads the scheduled set from a real redis-server and publishes to a broker address
where nothing listens.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald import clock
from herald.config import Settings
from herald.delivery.scheduler import Scheduler
from herald.ops.embedded import free_port
from herald.ops.reconciler import Reconciler
from herald.state import store
from herald.state.queues import make_celery
from tests.harness import redis_of_its_own

pytestmark = pytest.mark.integration

KEY = "sched-outage-1:sms"
VISIBILITY = 600


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    with redis_of_its_own(tmp_path, initialized=False) as url:
        yield redis.Redis.from_url(url, decode_responses=True)


class StopsAfter(Scheduler):
    """A scheduler that stops itself after a few ticks (each of which fails to publish)."""

    ticks = 0

    def tick(self, limit: int = 1000) -> int:
        self.ticks += 1
        if self.ticks >= 3:
            self.stop()
        return super().tick(limit)


def test_a_publish_that_fails_does_not_stop_the_scheduler_and_the_reconciler_finds_the_key(
    client: redis.Redis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.time()
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    settings = Settings(
        redis_url=url,
        scheduler_interval=0.05,
        visibility_timeout=VISIBILITY,
    )
    client.hset(store.delivery_redis_key(KEY), mapping={"state": "scheduled", "category": "collection"})
    client.zadd(store.SCHEDULED, {KEY: now - 1})
    client.zadd(store.DEADLINES, {KEY: now - 1 + VISIBILITY})  # as defer.lua leaves it
    nowhere = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    scheduler = StopsAfter(settings, make_celery(nowhere), redis.Redis.from_url(url))

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with caplog.at_level(logging.WARNING, logger="herald.periodic"):
            scheduler.run_forever()  # returns after its third tick instead of raising at the first
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)

    assert scheduler.ticks == 3
    assert "scheduler: could not reach Redis" in caplog.text
    assert client.zscore(store.SCHEDULED, KEY) is None  # taken off the set, never published
    assert client.hget(store.delivery_redis_key(KEY), "state") == "scheduled"

    published: list[list[str]] = []
    later = now + settings.hold_seconds + 1  # taken off the set, its deadline is a hold away
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(later - time.time()))
    reconciler = Reconciler(
        settings, make_celery(nowhere), client, clock=lambda: later, publish=published.append
    )
    reconciler.reconcile_once()
    assert published == [[KEY]]
