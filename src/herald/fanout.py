"""Publishing delivery keys to their channel queues, in bounded batches.

Used by the intake task (fan-out of a producer's batch) and by the scheduler (deliveries whose
time has come). Messages carry keys only; Redis holds the work.
"""

from __future__ import annotations

from collections import defaultdict

import redis
from celery import Celery

from herald import store
from herald.models import Channel, split_delivery_key
from herald.queues import TASK_DELIVER, queue_for


def group_by_queue(
    keys: list[str], categories: dict[str, str]
) -> tuple[dict[tuple[Channel, str], list[str]], list[str]]:
    """Delivery keys grouped by channel and lane queue (first-seen order, no repeats), and the
    malformed."""
    groups: dict[tuple[Channel, str], list[str]] = defaultdict(list)
    bad: list[str] = []
    for key in dict.fromkeys(keys):
        try:
            _, channel = split_delivery_key(key)
        except ValueError:
            bad.append(key)
            continue
        groups[(channel, queue_for(channel, categories.get(key, "")))].append(key)
    return dict(groups), bad


def read_categories(client: redis.Redis, keys: list[str]) -> dict[str, str]:
    """Each delivery's category, read in one pipelined round trip (it decides the lane)."""
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(store.delivery_redis_key(key), "category")
        answers = pipe.execute()
    return {
        k: (a.decode() if isinstance(a, bytes) else str(a or "")) for k, a in zip(keys, answers, strict=True)
    }


def publish_deliveries(app: Celery, client: redis.Redis, keys: list[str], batch: int) -> list[str]:
    """Publish ``keys`` to their channel's lane queues, ``batch`` keys per message.

    Returns the keys that were not delivery keys (they are not published).
    """
    return publish_to_lanes(app, keys, read_categories(client, keys), batch)


def publish_to_lanes(app: Celery, keys: list[str], categories: dict[str, str], batch: int) -> list[str]:
    """Publish ``keys`` whose categories are known to their lane queues, ``batch`` per message.

    Returns the keys that were not delivery keys (they are not published).
    """
    groups, bad = group_by_queue(keys, categories)
    for (channel, queue), queue_keys in groups.items():
        for start in range(0, len(queue_keys), batch):
            app.send_task(TASK_DELIVER, args=[channel, queue_keys[start : start + batch]], queue=queue)
    return bad
