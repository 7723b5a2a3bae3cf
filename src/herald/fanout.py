"""Publishing delivery keys to their channel queues, in bounded batches.

Used by the intake task (fan-out of a producer's batch) and by the scheduler (deliveries whose
time has come). Messages carry keys only; Redis holds the work.
"""

from __future__ import annotations

from collections import defaultdict

from celery import Celery

from herald.models import Channel, split_delivery_key
from herald.queues import TASK_DELIVER, queue_for


def group_by_channel(keys: list[str]) -> tuple[dict[Channel, list[str]], list[str]]:
    """Delivery keys grouped by channel (first-seen order, no repeats), and the malformed."""
    groups: dict[Channel, list[str]] = defaultdict(list)
    bad: list[str] = []
    for key in dict.fromkeys(keys):
        try:
            _, channel = split_delivery_key(key)
        except ValueError:
            bad.append(key)
            continue
        groups[channel].append(key)
    return dict(groups), bad


def publish_deliveries(app: Celery, keys: list[str], batch: int) -> list[str]:
    """Publish ``keys`` to their channel queues, ``batch`` keys per message.

    Returns the keys that were not delivery keys (they are not published).
    """
    groups, bad = group_by_channel(keys)
    for channel, channel_keys in groups.items():
        for start in range(0, len(channel_keys), batch):
            app.send_task(
                TASK_DELIVER,
                args=[channel, channel_keys[start : start + batch]],
                queue=queue_for(channel),
            )
    return bad
