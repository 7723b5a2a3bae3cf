"""Cancelling a reminder: upstream withdraws it (the borrower just paid).

The reminder is marked cancelled (the claim checks it atomically before every provider call)
and each pending delivery ends ``cancelled`` now. A delivery already being sent cannot be
called back; it is reported as such.
"""

from __future__ import annotations

import redis

from herald import clock
from herald.state import store


class UnknownReminder(LookupError):
    """No reminder with that id (never accepted, or past its retention)."""


def cancel(client: redis.Redis, reminder_id: str, *, events_maxlen: int = 1_000_000) -> dict[str, str]:
    """Cancel ``reminder_id``; returns each delivery's state afterwards, by delivery key.

    One atomic script (``lua/cancel.lua``): the reminder is marked, every pending delivery ends
    ``cancelled`` and leaves the scheduler; one being sent is reported as ``sending``.
    """
    script = client.register_script(store.script_source("cancel"))
    keys = [store.reminder_key(reminder_id), store.EVENTS, store.DEADLINES, store.SCHEDULED]
    args: list[str | float] = [store.PREFIX, reminder_id, clock.offset(), events_maxlen, "withdrawn upstream"]
    answer = script(keys=keys, args=args)
    if answer is None:
        raise UnknownReminder(f"no reminder with id {reminder_id!r} (never accepted, or expired)")
    flat = [item.decode() if isinstance(item, bytes) else str(item) for item in answer]
    return dict(zip(flat[::2], flat[1::2], strict=True))
