"""Cancelling a reminder: upstream withdraws it (the borrower just paid).

The reminder is marked cancelled (the claim checks it atomically before every provider call)
and each pending delivery ends ``cancelled`` now. A delivery already being sent cannot be
called back; it is reported as such.
"""

from __future__ import annotations

import redis

from herald import clock, store


class UnknownReminder(LookupError):
    """No reminder with that id (never accepted, or past its retention)."""


def cancel(client: redis.Redis, reminder_id: str, *, events_maxlen: int = 1_000_000) -> dict[str, str]:
    """Cancel ``reminder_id``; returns each delivery's state afterwards, by delivery key."""
    rkey = store.reminder_key(reminder_id)
    now = clock.time()
    channels_raw = client.hget(rkey, "channels")
    if channels_raw is None:
        raise UnknownReminder(f"no reminder with id {reminder_id!r} (never accepted, or expired)")
    client.hsetnx(rkey, "cancelled_at", f"{now:.3f}")
    channels = [
        c
        for c in (channels_raw.decode() if isinstance(channels_raw, bytes) else channels_raw).split(",")
        if c
    ]
    settle = client.register_script(store.script_source("settle"))
    result: dict[str, str] = {}
    for channel in channels:
        key = f"{reminder_id}:{channel}"
        keys = [store.delivery_redis_key(key), store.EVENTS, store.DEADLINES, store.DEADLETTER]
        settle(
            keys=keys,
            args=[
                store.PREFIX,
                key,
                now,
                store.iso(now),
                events_maxlen,
                "cancelled",
                "withdrawn upstream",
                "",
            ],
        )
        client.zrem(store.SCHEDULED, key)
        state = client.hget(store.delivery_redis_key(key), "state")
        result[key] = state.decode() if isinstance(state, bytes) else str(state)
    return result
