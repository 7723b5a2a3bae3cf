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
import signal
import threading
from types import FrameType

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from herald import clock, store
from herald.config import Settings
from herald.fanout import publish_deliveries
from herald.redisconn import settings_client

log = logging.getLogger("herald.scheduler")


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

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        log.info("scheduler started (every %.1fs)", self.settings.scheduler_interval)
        while not self._stop.is_set():
            try:
                self.expire_leases()
                moved = self.tick()
                if moved:
                    log.info("published %d due deliveries", moved)
            except (redis.RedisError, OperationalError) as exc:  # the next tick tries again
                log.warning("scheduler could not reach Redis: %s", exc)
            self._stop.wait(self.settings.scheduler_interval)
