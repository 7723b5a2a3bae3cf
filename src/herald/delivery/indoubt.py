"""In-doubt deliveries: the provider may have accepted them; an operator decides.

A delivery is ``in_doubt`` after an ambiguous provider failure (a timeout after sending, a
500) or when its worker died between the claim and the record (its lease ended). herald never
resends it by itself (for the categories in ``HERALD_IN_DOUBT_CATEGORIES``); an operator who
has checked with the provider settles it as sent or not sent.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import redis

from herald import clock
from herald.state import store


def list_in_doubt(client: redis.Redis, *, offset: int = 0, count: int = 100) -> list[dict[str, Any]]:
    """In-doubt deliveries, oldest first, with their reason."""
    members = client.zrange(store.IN_DOUBT, offset, offset + count - 1)
    keys = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(store.delivery_redis_key(key))
        states = pipe.execute()
    return [
        asdict(store.DeliveryView.from_hash(k, store.decode_hash(h)))
        for k, h in zip(keys, states, strict=True)
    ]


def resolve(
    client: redis.Redis, key: str, *, sent: bool, by: str, reason: str = "", events_maxlen: int = 1_000_000
) -> bool:
    """Settle an in-doubt delivery as ``sent`` or ``failed`` (not sent); False if not in doubt."""
    outcome = "sent" if sent else "failed"
    text = f"resolved by {by}: {'the provider had it' if sent else 'not sent'}" + (
        f" ({reason})" if reason else ""
    )
    script = client.register_script(store.script_source("resolve"))
    args: list[str | float] = [store.PREFIX, key, clock.offset(), events_maxlen, outcome, text]
    return bool(script(keys=[store.delivery_redis_key(key), store.EVENTS, store.DEADLINES], args=args))
