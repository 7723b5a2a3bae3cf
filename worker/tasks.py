"""Thin tasks: each hands its batch of keys to herald and returns.

No ETA, countdown or Celery retry is used: waits go through herald's scheduler.
"""

from __future__ import annotations

import logging
import threading

import redis

from herald.aio import loop_thread
from herald.config import get_settings
from herald.fanout import publish_deliveries
from herald.models import CHANNELS
from herald.pipeline import process_batch
from herald.queues import TASK_DELIVER, TASK_INTAKE
from herald.runtime import Runtime
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
            _client = redis.Redis.from_url(get_settings().redis_url)
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


@app.task(name=TASK_INTAKE)
def intake(keys: list[str]) -> None:
    """Fan a producer's batch of delivery keys out to the channel queues."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        log.error("intake message is not a list of delivery keys; dropped: %.200r", keys)
        return
    bad = publish_deliveries(app, redis_client(), keys, get_settings().channel_batch)
    if bad:
        log.error("intake dropped %d malformed keys, e.g. %.100r", len(bad), bad[0])


@app.task(name=TASK_DELIVER)
def deliver(channel: str, keys: list[str]) -> None:
    """Take one batch of one channel's deliveries through the pipeline."""
    if channel not in CHANNELS or not isinstance(keys, list):
        log.error("deliver message is malformed; dropped: %.200r %.200r", channel, keys)
        return
    rt = runtime()
    settings = rt.settings
    report = loop_thread().run(
        process_batch(rt, channel, [str(k) for k in keys]),
        timeout=settings.visibility_timeout / 4,
    )
    if report.dropped:
        log.info("dropped %d of %d: %s", len(report.dropped), len(keys), report.dropped)
