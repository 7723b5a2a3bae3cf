"""Thin tasks: each hands its batch of keys to herald and returns.

No ETA, countdown or Celery retry is used: waits go through herald's scheduler. Arguments that
are not what herald publishes are dead-lettered (``herald.state.poison``), and the good keys among
them still go to work.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import Task
from celery.signals import worker_shutting_down

from herald.config import get_settings
from herald.delivery.aio import loop_thread
from herald.delivery.pipeline import process_batch
from herald.delivery.runtime import Runtime
from herald.state import poison
from herald.state.fanout import mark_queued, publish_deliveries
from herald.state.queues import TASK_DELIVER, TASK_INTAKE
from herald.state.redisconn import settings_client
from worker.app import app

log = logging.getLogger("herald.worker")
_runtime: Runtime | None = None
_building = threading.Lock()
_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """This process's synchronous Redis client (the intake task reads categories with it)."""
    global _client
    with _building:
        if _client is None:
            _client = settings_client(get_settings())
        return _client


def runtime() -> Runtime:
    """This process's runtime, built inside its event loop on first use (by one thread)."""
    global _runtime
    thread = loop_thread()
    with _building:
        if _runtime is None or _runtime.pid != thread.pid:

            async def build() -> Runtime:
                return Runtime(get_settings())

            _runtime = thread.run(build())
        return _runtime


def _dead_letter(task: Task[Any, Any], problem: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Record a message whose arguments herald cannot use (acknowledged when the task returns)."""
    info = task.request.delivery_info or {}
    poison.record(
        redis_client(),
        queue=str(info.get("routing_key") or ""),
        task=str(task.name),
        reason=f"bad arguments: {problem}",
        body=(args, kwargs),
        maxlen=get_settings().events_maxlen,
    )


@worker_shutting_down.connect
def _stop_taking(**_: Any) -> None:
    """A warm shutdown began: deliveries not yet claimed are handed back instead of waiting for a
    send slot; claimed ones finish their request and are recorded (``herald.delivery.pipeline``)."""
    rt = _runtime
    if rt is not None and rt.pid == loop_thread().pid:
        loop_thread().loop.call_soon_threadsafe(rt.stopping.set)


@app.task(name=TASK_INTAKE, bind=True)
def intake(self: Task[Any, None], *args: Any, **kwargs: Any) -> None:
    """Fan a producer's batch of delivery keys out to the channel queues."""
    parsed = poison.intake_args(args, kwargs)
    if parsed.problem:
        _dead_letter(self, parsed.problem, args, kwargs)
    if parsed.keys:
        settings = get_settings()
        client = redis_client()
        # held while they are fanned out: if this process dies here, the reconciler publishes
        # them again once HERALD_HOLD_SECONDS have passed (not after the visibility timeout)
        mark_queued(client, parsed.keys, settings.hold_seconds)
        publish_deliveries(app, client, parsed.keys, settings.channel_batch, settings.visibility_timeout)


@app.task(name=TASK_DELIVER, bind=True)
def deliver(self: Task[Any, None], *args: Any, **kwargs: Any) -> None:
    """Take one batch of one channel's deliveries through the pipeline."""
    parsed = poison.deliver_args(args, kwargs)
    if parsed.problem:
        _dead_letter(self, parsed.problem, args, kwargs)
    if parsed.channel is None or not parsed.keys:
        return
    rt = runtime()
    settings = rt.settings
    report = loop_thread().run(
        process_batch(rt, parsed.channel, parsed.keys),
        timeout=settings.visibility_timeout / 4,
    )
    if report.dropped:
        log.info("dropped %d of %d: %s", len(report.dropped), len(parsed.keys), report.dropped)
