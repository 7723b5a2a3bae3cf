"""The reconciler: re-publishes accepted deliveries that the broker lost, at a bounded rate.

Celery messages carry delivery keys; Redis holds the work. Every unfinished delivery has an
entry in ``herald:deadlines`` scored by when it should have moved on: intake sets it to the
acceptance plus the visibility timeout, a wait in the scheduler (``not_before``, a retry) to
its due time plus the visibility timeout, a claim to the end of its lease; an outcome removes
it. The
Redis transport can lose a message between BRPOP and its unacknowledged record, or in the last
second before an AOF fsync; such a delivery stays pending and its deadline passes.

``herald reconcile`` looks at the overdue entries every ``HERALD_RECONCILE_INTERVAL`` seconds
and decides per state in one Lua call (``lua/reconcile.lua``):

- pending (``accepted``, ``scheduled``, ``retrying``) and not waiting in ``herald:scheduled``:
  lost. Its key is re-published to its channel's lane and its deadline pushed a visibility
  timeout ahead;
- pending and waiting in ``herald:scheduled``: not lost (the scheduler will publish it, even
  if it was down); only its deadline is moved;
- ``sending`` under a live lease: never touched; under an ended lease: left to the
  scheduler's lease sweep (``in_doubt``, or resent by policy);
- finished, or expired from Redis: the stale entry is removed.

Because the deadline moves in the same atomic call that picks a key, two reconcilers (or a
reconciler racing a worker) never pick the same key twice; a re-published key that was not
lost after all is harmless, as the claim lets only one send through. The rate is bounded by a
token bucket (``HERALD_RECONCILE_RATE`` keys a second, at most one interval's worth per pass),
so a long outage that leaves many deliveries overdue does not become a storm of messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from herald import clock
from herald.config import Settings
from herald.periodic import run_every, stop_on_signals
from herald.state import store
from herald.state.fanout import publish_deliveries
from herald.state.redisconn import settings_client

log = logging.getLogger("herald.reconcile")

SCAN_EXTRA = 1000
"""Overdue entries looked at per pass beyond the budget (those not to re-publish: waiting in
the scheduler, under a lease, stale), so that they never hide the lost ones for long."""

Publisher = Callable[[list[str]], object]


class RateBudget:
    """A token bucket: ``rate`` tokens a second, holding at most ``burst``; starts full.

    ``clock`` gives seconds (injected by tests); a clock that goes backwards adds nothing.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.at = clock()

    def available(self) -> int:
        """Whole tokens available now."""
        now = self.clock()
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = max(self.at, now)
        return int(self.tokens)

    def spend(self, count: int) -> None:
        """Take ``count`` tokens (after :meth:`available` said they were there)."""
        self.tokens = max(0.0, self.tokens - count)

    def seconds_until(self, count: int) -> float:
        """How long until ``count`` tokens are available (0 when they are)."""
        missing = min(float(count), self.burst) - self.tokens
        return max(0.0, missing / self.rate)


@dataclass
class PassReport:
    """What one pass did with the overdue deliveries it looked at."""

    republished: list[str] = field(default_factory=list)
    waiting: int = 0
    """Overdue but waiting in the scheduler (not lost): only the deadline moved."""
    leased: int = 0
    """Being sent under a lease (live, or ended and left to the scheduler's lease sweep)."""
    removed: int = 0
    """Stale entries of deliveries that finished or expired from Redis."""
    overdue: int = 0
    """Still overdue after the pass: left for the next ones by the rate bound."""
    limited: bool = False
    """The rate left no room: the pass looked at nothing."""

    def add(self, other: PassReport) -> None:
        """Add ``other``'s counts to this one (``overdue`` becomes ``other``'s)."""
        self.republished.extend(other.republished)
        self.waiting += other.waiting
        self.leased += other.leased
        self.removed += other.removed
        self.overdue = other.overdue

    def summary(self) -> str:
        """One line of counts (no keys: they may name accounts)."""
        return (
            f"re-published {len(self.republished)} lost deliveries; {self.waiting} waiting in the "
            f"scheduler, {self.leased} under a lease, {self.removed} stale entries removed; "
            f"{self.overdue} still overdue"
        )


class Reconciler:
    """Finds overdue deliveries and re-publishes the lost ones, ``settings.reconcile_rate`` a second.

    Parameters: ``settings``; ``app``, the Celery app to publish with; ``client``, a synchronous
    Redis client; ``clock`` (default :func:`herald.clock.time`) for the rate (deadlines are
    compared on Redis's clock); and
    ``publish``, called with each pass's keys (default: :func:`herald.state.fanout.publish_deliveries`
    in batches of ``HERALD_CHANNEL_BATCH``).
    """

    def __init__(
        self,
        settings: Settings,
        app: Celery,
        client: redis.Redis | None = None,
        *,
        clock: Callable[[], float] = clock.time,
        publish: Publisher | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.redis = client or settings_client(settings)
        self.clock = clock
        self.publish = publish or self._publish
        burst = max(1.0, settings.reconcile_rate * settings.reconcile_interval)
        self.budget = RateBudget(settings.reconcile_rate, burst, clock)
        self._script = self.redis.register_script(store.script_source("reconcile"))
        self._stop = threading.Event()

    def _publish(self, keys: list[str]) -> None:
        s = self.settings
        publish_deliveries(self.app, self.redis, keys, s.channel_batch, s.visibility_timeout)

    def reconcile_once(self) -> PassReport:
        """One pass: decide on overdue deliveries and re-publish up to the rate's budget.

        A key is published after its deadline moved (to ``HERALD_HOLD_SECONDS`` ahead, on
        Redis's clock): if publishing fails, the key is overdue again then and is found again,
        so nothing is lost; once published, its deadline is the broker's (the visibility
        timeout).
        """
        budget = self.budget.available()
        if budget < 1:
            return PassReport(limited=True)
        s = self.settings
        args: list[str | float] = [store.PREFIX, clock.offset(), budget, budget + SCAN_EXTRA]
        args += [s.visibility_timeout, s.hold_seconds, s.retention_days * 86400]
        keys, counts = self._script(keys=[store.DEADLINES, store.SCHEDULED, store.RECONCILE], args=args)
        report = PassReport(
            republished=[k.decode() if isinstance(k, bytes) else str(k) for k in keys],
            removed=int(counts[0]),
            waiting=int(counts[1]),
            leased=int(counts[2]),
            overdue=int(counts[3]),
        )
        self.budget.spend(len(report.republished))
        if report.republished:
            self.publish(report.republished)
        return report

    def drain(self) -> PassReport:
        """Passes until nothing is overdue, waiting for the rate between them (``--once``)."""
        total = PassReport()
        while not self._stop.is_set():
            report = self.reconcile_once()
            if report.limited:
                self._stop.wait(self.budget.seconds_until(1))
                continue
            total.add(report)
            if report.overdue == 0:
                break
            self._stop.wait(self.budget.seconds_until(min(report.overdue, int(self.budget.burst))))
        return total

    def stop(self, *_: object) -> None:
        """Ask the loop to end after the current pass."""
        self._stop.set()

    def run_forever(self) -> None:
        """A pass every ``HERALD_RECONCILE_INTERVAL`` seconds until SIGTERM or SIGINT."""

        stop_on_signals(self._stop, "reconciler")
        log.info(
            "reconciler started (every %.1fs, at most %g keys/s)",
            self.settings.reconcile_interval,
            self.settings.reconcile_rate,
        )

        def step() -> None:
            report = self.reconcile_once()
            if report.republished or report.removed:
                log.info("%s", report.summary())
            if report.republished and report.overdue > 0:
                log.warning(
                    "%d deliveries are overdue beyond the rate (HERALD_RECONCILE_RATE=%g/s)",
                    report.overdue,
                    self.settings.reconcile_rate,
                )

        run_every(
            self.settings.reconcile_interval,
            step,
            self._stop,
            name="reconciler",
            outages=(redis.RedisError, OperationalError),
            describe=lambda exc: f"could not reach Redis: {exc}",
        )
        log.info("reconciler stopped")
