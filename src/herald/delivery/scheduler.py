"""The scheduler: deliveries waiting for a time, moved back to their queues when due.

Waits (``not_before``, retry backoff, and later send windows, caps and rate-limit debt) are
members of the ``herald:scheduled`` sorted set scored by when they are due, never Celery
ETAs. ``herald scheduler`` polls it; every guard runs again when the delivery comes back.
A delivery taken off the set whose publication is lost keeps its entry in
``herald:deadlines``, so the reconciler can find it; the scheduler itself keeps running
through such a failure (Redis gone between taking the keys and publishing them).
"""

from __future__ import annotations

import logging
import threading

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from herald import clock
from herald.config import Settings
from herald.periodic import run_every, stop_on_signals
from herald.state import store
from herald.state.fanout import publish_deliveries
from herald.state.redisconn import settings_client

log = logging.getLogger("herald.delivery.scheduler")


class Scheduler:
    """Moves due deliveries from the scheduled set to their channel queues."""

    def __init__(self, settings: Settings, app: Celery, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.app = app
        self.redis = client or settings_client(settings)
        self._due = self.redis.register_script(store.script_source("due"))
        self._leases = self.redis.register_script(store.script_source("leases"))
        self._stop = threading.Event()

    def expire_leases(self, limit: int = 500) -> list[str]:
        """Settle deliveries whose lease ended without a result (``in_doubt``, or resent by policy)."""
        args: list[str | float] = [
            store.PREFIX,
            clock.offset(),
            self.settings.events_maxlen,
            limit,
            self.settings.in_doubt_categories,
            self.settings.visibility_timeout,
        ]
        done = self._leases(keys=[store.EVENTS, store.DEADLINES, store.SCHEDULED], args=args)
        keys = [k.decode() for k in done]
        if keys:
            log.warning(
                "%d deliveries lost their worker after the claim: %s", len(keys), ", ".join(keys[:20])
            )
        return keys

    def tick(self, limit: int = 1000) -> int:
        """Publish every delivery due now (in rounds of ``limit``); returns how many."""
        total = 0
        while True:
            args: list[str | float] = [store.PREFIX, clock.offset(), limit, self.settings.hold_seconds]
            due = self._due(keys=[store.SCHEDULED, store.DEADLINES], args=args)
            keys = [k.decode() for k in due]
            if keys:
                s = self.settings
                publish_deliveries(self.app, self.redis, keys, s.channel_batch, s.visibility_timeout)
                total += len(keys)
            if len(keys) < limit:
                return total

    def stop(self, *_: object) -> None:
        """Ask the loop to end after the current tick."""
        self._stop.set()

    def run_forever(self) -> None:
        """Tick every ``HERALD_SCHEDULER_INTERVAL`` seconds until SIGTERM or SIGINT."""

        stop_on_signals(self._stop, "scheduler")
        log.info("scheduler started (every %.1fs)", self.settings.scheduler_interval)

        def step() -> None:
            self.expire_leases()
            moved = self.tick()
            if moved:
                log.info("published %d due deliveries", moved)

        run_every(
            self.settings.scheduler_interval,
            step,
            self._stop,
            name="scheduler",
            outages=(redis.RedisError, OperationalError),
            describe=lambda exc: f"could not reach Redis: {exc}",
        )
