"""Prometheus metrics: what the pipeline counts, and what Redis holds, read at scrape time.

Counted where it happens (in the worker processes): see ``herald.instruments``.

Read from Redis at each scrape by :class:`RedisCollector` (cluster-wide values: every target
that serves them reports the same numbers, so aggregate them with ``max``):
``herald_queue_depth{queue,channel,lane}``, ``herald_broker_unacked``,
``herald_scheduled_deliveries``, ``herald_scheduled_due``, ``herald_leases``,
``herald_in_doubt_deliveries``, ``herald_deadletter_entries``, ``herald_reconciled_total``
(deliveries ``herald reconcile`` re-published) and ``herald_redis_up``.

Several worker processes on one host are added up with prometheus-client's multiprocess mode:
``herald worker`` gives its processes a fresh ``PROMETHEUS_MULTIPROC_DIR`` (see
:mod:`herald.ops.metrics_server`). Recording never raises: a metrics failure must not fail a
delivery, so every helper below logs the problem once and carries on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

import orjson
import redis
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as KombuChannel
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from herald import clock
from herald.holds import suppression
from herald.state import store
from herald.state.fanout import PUBLISHED_AT
from herald.state.queues import ALL_QUEUES, BULK_QUEUES, CHANNEL_QUEUES, INTAKE
from herald.state.redisconn import redis_client

log = logging.getLogger("herald.ops.metrics")


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


def _published_at(message: bytes | str | None) -> float | None:
    """When a queued message was published (herald's header), None for no message or another's."""
    if message is None:
        return None
    try:
        value = orjson.loads(message).get("headers", {}).get(PUBLISHED_AT)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


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
                pipe.exists(suppression.MARKER)
                pipe.xlen(store.EVENTS)
                pipe.info("memory")
                pipe.xrange(store.EVENTS, count=1)
                pipe.hgetall(suppression.CHANGES)
                for queue in ALL_QUEUES:
                    for name in broker_lists(queue):
                        pipe.lindex(name, -1)  # kombu pushes left and pops right: the oldest
                results = pipe.execute()
                lists = len(ALL_QUEUES) * len(PRIORITY_STEPS)
                *counts, memory, first_event, hold_changes = results[:-lists]
                oldest = results[-lists:]
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
        age = GaugeMetricFamily(
            "herald_queue_oldest_seconds",
            "How long the oldest message of a broker queue has waited (0: the queue is empty).",
            labels=["queue", "channel", "lane"],
        )
        for i, queue in enumerate(ALL_QUEUES):
            published = [_published_at(m) for m in oldest[i * steps : (i + 1) * steps]]
            found = [t for t in published if t is not None]
            age.add_metric([queue, *_lane(queue)], max(0.0, now - min(found)) if found else 0.0)
        yield age
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
            "herald_suppression_populated",
            "1 while the suppression store's marker is in Redis; 0: nothing is sent (fail closed) until "
            "`herald suppress rebuild` or `init`.",
            value=next(rest),
        )
        yield GaugeMetricFamily(
            "herald_ledger_backlog_entries",
            "Outcomes and changes in Redis's events stream not yet copied into the ledger.",
            value=next(rest),
        )
        lag = 0.0
        if first_event:  # entry ids are Redis's own milliseconds, without the test offset
            added = int(store.text(first_event[0][0]).split("-")[0]) / 1000
            lag = max(0.0, now - clock.offset() - added)
        yield GaugeMetricFamily(
            "herald_ledger_lag_seconds",
            "Age of the oldest event not yet copied into the ledger (0: the ledger writer is caught up).",
            value=lag,
        )
        holds = CounterMetricFamily(
            "herald_hold_changes",
            "Suppression holds added, replaced and lifted, by every writer (API, operator page, "
            "command line, agreement events).",
            labels=["change"],
        )
        counted = {store.text(k): int(v) for k, v in hold_changes.items()}
        for change in ("added", "replaced", "lifted"):
            holds.add_metric([change], counted.get(change, 0))
        yield holds
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
