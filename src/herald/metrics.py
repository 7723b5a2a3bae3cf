"""Prometheus metrics: what the pipeline counts, and what Redis holds, read at scrape time.

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

Read from Redis at each scrape by :class:`RedisCollector` (cluster-wide values: every target
that serves them reports the same numbers, so aggregate them with ``max``):
``herald_queue_depth{queue,channel,lane}``, ``herald_broker_unacked``,
``herald_scheduled_deliveries``, ``herald_scheduled_due``, ``herald_leases``,
``herald_in_doubt_deliveries``, ``herald_deadletter_entries``, ``herald_reconciled_total``
(deliveries ``herald reconcile`` re-published) and ``herald_redis_up``.

Several worker processes on one host are added up with prometheus-client's multiprocess mode:
``herald worker`` gives its processes a fresh ``PROMETHEUS_MULTIPROC_DIR`` (see
:mod:`herald.metrics_server`). Recording never raises: a metrics failure must not fail a
delivery, so every helper below logs the problem once and carries on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import wraps
from typing import ParamSpec

import redis
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as KombuChannel
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from herald import clock, store
from herald.models import split_delivery_key
from herald.queues import ALL_QUEUES, BULK_QUEUES, CHANNEL_QUEUES, INTAKE
from herald.redisconn import redis_client

log = logging.getLogger("herald.metrics")

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


def _lane(queue: str) -> tuple[str, str]:
    if queue == INTAKE:
        return "", "intake"
    for channel, name in CHANNEL_QUEUES.items():
        if name == queue:
            return channel, "priority"
    for channel, name in BULK_QUEUES.items():
        if name == queue:
            return channel, "bulk"
    return "", ""


def broker_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps for one queue: the queue itself and its priority sub-lists.

    kombu's Redis transport stores priority ``p`` (of ``PRIORITY_STEPS``, 0 3 6 9) of queue
    ``q`` in the list ``q`` for 0 and ``q\\x06\\x16p`` otherwise; herald sets no priorities, but a
    message published with one would sit there.
    """
    return [queue if p == 0 else f"{queue}{KombuChannel.sep}{p}" for p in PRIORITY_STEPS]


class RedisCollector(Collector):
    """Gauges read from Redis at scrape time: queue depths, scheduled, in doubt, dead letters.

    Parameters: ``client``, a synchronous Redis client (give it short socket timeouts: a scrape
    must not hang on an unreachable Redis). When Redis cannot be read, only ``herald_redis_up``
    is reported, as 0; the scrape itself never fails.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        """One pipelined round trip to Redis, turned into gauges."""
        up = GaugeMetricFamily("herald_redis_up", "1 when the metrics collector could read Redis.")
        now = clock.time()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for queue in ALL_QUEUES:
                    for name in broker_lists(queue):
                        pipe.llen(name)
                pipe.hlen(KombuChannel.unacked_key)
                pipe.zcard(store.SCHEDULED)
                pipe.zcount(store.SCHEDULED, "-inf", now)
                pipe.zcard(store.LEASES)
                pipe.zcard(store.IN_DOUBT)
                pipe.xlen(store.DEADLETTER)
                pipe.hget(store.RECONCILE, "republished")
                pipe.info("memory")
                *counts, memory = pipe.execute()
                answers = [int(a or 0) for a in counts]
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: cannot read Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "herald_queue_depth",
            "Messages (batches of delivery keys) waiting in a broker queue.",
            labels=["queue", "channel", "lane"],
        )
        steps = len(PRIORITY_STEPS)
        for i, queue in enumerate(ALL_QUEUES):
            depth.add_metric([queue, *_lane(queue)], sum(answers[i * steps : (i + 1) * steps]))
        yield depth
        rest = iter(answers[len(ALL_QUEUES) * steps :])
        for name, doc in (
            ("herald_broker_unacked", "Messages delivered to workers and not yet acknowledged."),
            (
                "herald_scheduled_deliveries",
                "Deliveries waiting in the scheduler (not_before, retries, limits).",
            ),
            (
                "herald_scheduled_due",
                "Scheduled deliveries already due: should stay near 0 while a scheduler runs.",
            ),
            ("herald_leases", "Deliveries claimed and being sent (state sending)."),
            ("herald_in_doubt_deliveries", "In-doubt deliveries waiting for an operator (herald resolve)."),
            ("herald_deadletter_entries", "Entries in the dead-letter stream (retries exhausted)."),
        ):
            yield GaugeMetricFamily(name, doc, value=next(rest))
        yield CounterMetricFamily(
            "herald_reconciled",
            "Deliveries the reconciler re-published because the broker had lost them (every reconciler).",
            value=next(rest),
        )
        yield GaugeMetricFamily(
            "herald_redis_memory_used_bytes",
            "Memory Redis uses (INFO memory used_memory).",
            value=int(memory.get("used_memory", 0)),
        )
        yield GaugeMetricFamily(
            "herald_redis_memory_max_bytes",
            "Redis's maxmemory (0: no limit); at it, every write is refused.",
            value=int(memory.get("maxmemory", 0)),
        )


def redis_for_metrics(redis_url: str) -> redis.Redis:
    """A Redis client for the collector, with timeouts short enough for a scrape."""
    return redis_client(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)


class Union(Collector):
    """Several collectors (or registries) served as one: ``Union([a, b]).collect()``."""

    def __init__(self, parts: Iterable[Collector]) -> None:
        self.parts = list(parts)

    def collect(self) -> Iterator[Metric]:
        """Everything each part collects, in order."""
        for part in self.parts:
            yield from part.collect()


def process_registry(redis_url: str) -> CollectorRegistry:
    """What one process (the API) serves: its own metrics, and the Redis gauges.

    When ``PROMETHEUS_MULTIPROC_DIR`` is set (the API run with several processes), its files
    are read instead of this process's memory, so every process answers with the sum.
    """
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(Union([REGISTRY]))
    registry.register(RedisCollector(redis_for_metrics(redis_url)))
    return registry
