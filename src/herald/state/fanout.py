"""Publishing delivery keys to their channel queues, in bounded batches.

Used by the producer, the intake task (fan-out of a producer's batch), the scheduler
(deliveries whose time has come), the reconciler and dead-letter replay. Messages carry keys
only; Redis holds the work. Once a message is out, :func:`mark_queued` hands its deliveries'
deadlines to the broker (``lua/queued.lua``): until then a publisher that dies leaves them with
a deadline ``HERALD_HOLD_SECONDS`` away, and the reconciler publishes them again.
"""

from __future__ import annotations

from collections import defaultdict
from weakref import WeakKeyDictionary

import redis
from celery import Celery
from redis.commands.core import Script

from herald import clock
from herald.models import Channel, split_delivery_key
from herald.state import store
from herald.state.queues import TASK_DELIVER, queue_for

_QUEUED: WeakKeyDictionary[redis.Redis, Script] = WeakKeyDictionary()


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


def publish_deliveries(
    app: Celery, client: redis.Redis, keys: list[str], batch: int, queued_for: float, holder: str = ""
) -> list[str]:
    """Publish ``keys`` to their channel's lane queues, ``batch`` keys per message, then give
    their deadlines to the broker (``queued_for`` seconds: the visibility timeout).

    Returns the keys that were not delivery keys (they are not published).
    """
    bad = publish_to_lanes(app, keys, read_categories(client, keys), batch)
    mark_queued(client, [k for k in keys if k not in set(bad)], queued_for, holder)
    return bad


def mark_queued(client: redis.Redis, keys: list[str], seconds: float, holder: str = "") -> int:
    """The deliveries' messages are out: each pending one not held by another process gets the
    deadline now + ``seconds`` (``lua/queued.lua``, on Redis's clock). ``holder``: the id of the
    process that held them and lets them go ('' for a producer). Returns how many moved."""
    if not keys:
        return 0
    script = _QUEUED.get(client)
    if script is None:
        script = _QUEUED[client] = client.register_script(store.script_source("queued"))
    moved = 0
    for start in range(0, len(keys), 1000):
        args: list[str | float] = [store.PREFIX, clock.offset(), seconds, holder, *keys[start : start + 1000]]
        moved += int(script(keys=[store.DEADLINES], args=args))
    return moved


PUBLISHED_AT = "herald_published_at"
"""The message header holding when it was published (epoch seconds, herald's clock): how long the
oldest message of a queue has waited (``herald_queue_oldest_seconds``)."""


def published_header() -> dict[str, float]:
    """The headers herald adds to every message it publishes."""
    return {PUBLISHED_AT: round(clock.time(), 3)}


def publish_to_lanes(app: Celery, keys: list[str], categories: dict[str, str], batch: int) -> list[str]:
    """Publish ``keys`` whose categories are known to their lane queues, ``batch`` per message.

    Returns the keys that were not delivery keys (they are not published).
    """
    groups, bad = group_by_queue(keys, categories)
    for (channel, queue), queue_keys in groups.items():
        for start in range(0, len(queue_keys), batch):
            args = [channel, queue_keys[start : start + batch]]
            app.send_task(TASK_DELIVER, args=args, queue=queue, headers=published_header())
    return bad
