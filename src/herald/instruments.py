"""The counters and histograms a worker process updates as it delivers (prometheus-client).

Counted where it happens (in the worker processes):

- ``herald_outcomes_total{channel,outcome}``: every outcome a worker records (its guards, the
  claim, the provider's answer).
- ``herald_provider_latency_seconds{provider}``: one provider call, accepted or not (histogram).
- ``herald_provider_errors_total{provider,error}``: failed provider calls by class: permanent,
  opted_out, retryable, ambiguous, unexpected.
- ``herald_retries_total{channel,tier}``: ``quick`` (another attempt inside the task) or
  ``scheduled`` (handed back to the scheduler, state ``retrying``).
- ``herald_limiter_wait_seconds{channel}``: the wait for the rate limiter's token, awaited in
  the worker (histogram).
- ``herald_limiter_deferred_total{channel}``: deliveries whose wait was too long, sent to the
  scheduler.
- ``herald_provider_sent_total{channel,provider}``: deliveries each provider accepted.
- ``herald_breaker_open{provider}`` (1 while open), ``herald_breaker_opened_total{provider}``,
  ``herald_failovers_total{channel,provider}``: breakers and the traffic they moved.

Who reads them: ``herald.ops.metrics`` (each worker host's ``/metrics``, the processes added up
with prometheus-client's multiprocess mode). Recording never raises: a metrics failure must not
fail a delivery, so every helper below logs the problem once and carries on. Imports nothing of
herald but the wire format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import wraps
from typing import ParamSpec

from prometheus_client import Counter, Gauge, Histogram

from herald.models import split_delivery_key

log = logging.getLogger("herald.instruments")

PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
"""Provider calls: 50 ms (a local relay) to 30 s (beyond the default provider timeout)."""
LIMITER_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Limiter waits: none, up to HERALD_RATE_MAX_WAIT (2 s by default)."""

OUTCOMES = Counter("herald_outcomes_total", "Outcomes recorded by the workers.", ["channel", "outcome"])
PROVIDER_LATENCY = Histogram(
    "herald_provider_latency_seconds",
    "Seconds one provider call took, accepted or not.",
    ["provider"],
    buckets=PROVIDER_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "herald_provider_errors_total", "Provider calls that failed, by class of error.", ["provider", "error"]
)
RETRIES = Counter(
    "herald_retries_total",
    "Retries: quick (another attempt in the task) or scheduled (back to the scheduler).",
    ["channel", "tier"],
)
LIMITER_WAIT = Histogram(
    "herald_limiter_wait_seconds",
    "Seconds a delivery waited in the worker for its rate-limit token.",
    ["channel"],
    buckets=LIMITER_BUCKETS,
)
LIMITER_DEFERRED = Counter(
    "herald_limiter_deferred_total",
    "Deliveries sent to the scheduler because the rate limit had no room soon enough.",
    ["channel"],
)

PROVIDER_SENT = Counter(
    "herald_provider_sent_total",
    "Deliveries each provider accepted (sent), by channel: where traffic went after routing and failover.",
    ["channel", "provider"],
)
BREAKER_OPEN = Gauge(
    "herald_breaker_open",
    "1 while a provider's breaker is open (it is skipped, traffic goes to the next in its route).",
    ["provider"],
    multiprocess_mode="livemax",
)
BREAKER_OPENED = Counter(
    "herald_breaker_opened_total",
    "Times a provider's breaker opened (counted once, by the process that opened it).",
    ["provider"],
)
FAILOVERS = Counter(
    "herald_failovers_total",
    "Deliveries moved from one provider to the next of their route (its breaker open).",
    ["channel", "provider"],
)

P = ParamSpec("P")
_warned: set[str] = set()


def _never_raises(func: Callable[P, None]) -> Callable[P, None]:
    """Recording must never fail a delivery: log the first failure of each helper, go on."""

    @wraps(func)
    def safe(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception:
            if func.__name__ not in _warned:
                _warned.add(func.__name__)
                log.exception("metrics: %s failed (further failures are not logged)", func.__name__)

    return safe


def _channel_of(delivery_key: str) -> str:
    return split_delivery_key(delivery_key)[1]


@_never_raises
def record_outcome(delivery_key: str, outcome: str) -> None:
    """Count one recorded outcome (the channel is the delivery key's)."""
    OUTCOMES.labels(_channel_of(delivery_key), outcome).inc()


@_never_raises
def record_retry(delivery_key: str, tier: str) -> None:
    """Count one retry of a delivery: ``quick`` or ``scheduled``."""
    RETRIES.labels(_channel_of(delivery_key), tier).inc()


@_never_raises
def record_provider_call(provider: str, seconds: float, error: str = "") -> None:
    """Time one provider call; ``error`` names the class of failure (empty: accepted)."""
    PROVIDER_LATENCY.labels(provider).observe(seconds)
    if error:
        PROVIDER_ERRORS.labels(provider, error).inc()


@_never_raises
def record_limiter(channel: str, waits: Sequence[float], deferred: int) -> None:
    """The limiter's answer for a batch: the waits awaited here, and how many were deferred."""
    histogram = LIMITER_WAIT.labels(channel)
    for wait in waits:
        histogram.observe(max(0.0, wait))
    if deferred:
        LIMITER_DEFERRED.labels(channel).inc(deferred)


@_never_raises
def record_sent(channel: str, provider: str) -> None:
    """Count one delivery ``provider`` accepted."""
    PROVIDER_SENT.labels(channel, provider).inc()


@_never_raises
def record_breaker(provider: str, is_open: bool) -> None:
    """Whether ``provider``'s breaker is open, as this process last saw it."""
    BREAKER_OPEN.labels(provider).set(1 if is_open else 0)


@_never_raises
def record_breaker_opened(provider: str) -> None:
    """Count one opening of ``provider``'s breaker."""
    BREAKER_OPENED.labels(provider).inc()


@_never_raises
def record_failover(channel: str, away_from: str) -> None:
    """Count one delivery moved away from ``away_from`` (its breaker open)."""
    FAILOVERS.labels(channel, away_from).inc()
