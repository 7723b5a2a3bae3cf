"""Reading a reminder's record and its deliveries' states, for people and machines."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import redis

from herald.state import store


class StatusError(LookupError):
    """No reminder with that id (never accepted, or past its retention)."""


def read_status(client: redis.Redis, reminder_id: str) -> dict[str, Any]:
    """The reminder's record and each delivery's state, outcome, reason and times.

    What ``herald status --json`` prints and ``GET /v1/reminders/{id}`` answers, as it is: times
    are ISO-8601 UTC, and a time, outcome or reason not there yet is None (JSON null).
    """
    record = store.decode_hash(client.hgetall(store.reminder_key(reminder_id)))
    if not record:
        raise StatusError(f"no reminder with id {reminder_id!r} (never accepted, or expired)")
    channels = [c for c in record.get("channels", "").split(",") if c]
    with client.pipeline(transaction=False) as pipe:
        for channel in channels:
            pipe.hgetall(store.delivery_redis_key(f"{reminder_id}:{channel}"))
        states = pipe.execute()
    deliveries = [
        asdict(_view(f"{reminder_id}:{c}", c, store.decode_hash(h), record))
        for c, h in zip(channels, states, strict=True)
    ]
    return {
        "id": reminder_id,
        "account_id": record.get("account_id", ""),
        "kind": record.get("kind", ""),
        "category": record.get("category", ""),
        "accepted_at": store.iso_or_none(record.get("accepted_at")),
        "expires_at": store.iso_or_none(record.get("expires_at")),
        "not_before": store.iso_or_none(record.get("not_before")),
        "cancelled_at": store.iso_or_none(record.get("cancelled_at")),
        "deliveries": deliveries,
    }


def _view(key: str, channel: str, state: dict[str, str], record: dict[str, str]) -> store.DeliveryView:
    """A delivery as its hash says, or, once it was compacted (``lua/compact.lua``), as the
    summary its record keeps says: outcome, attempts, when it finished and why."""
    summary = record.get(f"c:{channel}")
    if state or summary is None:
        return store.DeliveryView.from_hash(key, state)
    outcome, attempts, finished_at, reason = [*summary.split("|", 3), "", "", ""][:4]
    attempts, _, provider = attempts.partition("@")
    folded = {
        "provider": provider,
        "channel": channel,
        "state": outcome,
        "outcome": outcome,
        "reason": reason,
        "attempts": attempts,
        "accepted_at": record.get("accepted_at", ""),
        "updated_at": finished_at,
        "finished_at": finished_at,
        "not_before": record.get("not_before", ""),
        "expires_at": record.get("expires_at", ""),
    }
    return store.DeliveryView.from_hash(key, folded)
