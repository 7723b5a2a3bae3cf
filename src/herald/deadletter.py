"""Dead letters: deliveries that ran out of retries, listed and put back to work.

A delivery whose safe-to-retry failures outlast ``HERALD_RETRY_DEADLINE`` ends ``dead`` and is
appended to the ``herald:deadletter`` stream. ``herald deadletter replay`` makes it pending
again and publishes it; every guard and the claim run again, so a replay never sends what has
since been cancelled, has expired or opted out.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery

from herald import clock, store
from herald.config import Settings
from herald.fanout import publish_deliveries


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the dead-letter stream."""

    entry_id: str
    key: str
    channel: str
    reason: str
    attempts: str
    at: str


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def list_dead(client: redis.Redis, *, count: int = 100, after: str = "-") -> list[DeadLetter]:
    """Up to ``count`` dead letters, oldest first, from stream id ``after`` on."""
    entries = client.xrange(store.DEADLETTER, min=after, max="+", count=count)
    out = []
    for entry_id, raw in entries or []:
        f = store.decode_hash(raw or {})
        out.append(
            DeadLetter(
                _text(entry_id),
                f.get("key", ""),
                f.get("channel", ""),
                f.get("reason", ""),
                f.get("attempts", ""),
                f.get("at", ""),
            )
        )
    return out


def replay(
    client: redis.Redis, app: Celery, settings: Settings, wanted: list[str]
) -> tuple[list[str], list[str]]:
    """Replay dead letters named by entry id or delivery key (all when ``wanted`` is empty).

    Returns (replayed delivery keys, names that matched no dead delivery).
    """
    letters: list[DeadLetter] = []
    after = "-"
    while batch := list_dead(client, count=1000, after=after):
        letters.extend(batch)
        after = "(" + batch[-1].entry_id
    chosen = [d for d in letters if not wanted or d.entry_id in wanted or d.key in wanted]
    unknown = [w for w in wanted if not any(w in (d.entry_id, d.key) for d in letters)]
    script = client.register_script(store.script_source("replay"))
    now = clock.time()
    replayed: list[str] = []
    for letter in chosen:
        args: list[str | float] = [store.PREFIX, letter.key, now, now + settings.visibility_timeout]
        if script(keys=[store.delivery_redis_key(letter.key), store.DEADLINES], args=args):
            replayed.append(letter.key)
    if replayed:
        publish_deliveries(app, client, replayed, settings.channel_batch)
    if chosen:
        client.xdel(store.DEADLETTER, *[d.entry_id for d in chosen])
    return sorted(set(replayed)), unknown
