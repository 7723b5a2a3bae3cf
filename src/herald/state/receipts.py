"""Delivery receipts: a provider reports on a message it accepted earlier (``lua/receipt.lua``).

A receipt is not a second outcome: it is stored on the sent delivery and appended to the events
stream for the ledger, also for a delivery already compacted into its record's summary.
"""

from __future__ import annotations

import redis

from herald import clock
from herald.models import split_delivery_key
from herald.state import store


class Receipts:
    """Records receipts on sent deliveries. Parameters: ``client`` (Redis), ``events_maxlen``
    (the events stream's approximate limit)."""

    def __init__(self, client: redis.Redis, events_maxlen: int) -> None:
        self.client = client
        self.events_maxlen = events_maxlen
        self._script = client.register_script(store.script_source("receipt"))

    def record(self, delivery: str, receipt: str, code: str = "") -> bool:
        """Record ``receipt`` (``delivered`` or ``undelivered``, with the provider's error
        ``code``) on ``delivery``; False when it is not a sent delivery."""
        reminder_id, channel = split_delivery_key(delivery)
        keys = [store.delivery_redis_key(delivery), store.EVENTS, store.reminder_key(reminder_id)]
        args: list[str | float] = [store.PREFIX, delivery, receipt, code, clock.offset(), self.events_maxlen]
        return bool(self._script(keys=keys, args=[*args, channel]))
