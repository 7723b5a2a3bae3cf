"""Dead letters: deliveries that ran out of retries, listed and put back to work.

A delivery whose safe-to-retry failures outlast ``HERALD_RETRY_DEADLINE`` ends ``dead`` and is
appended to the ``herald:deadletter`` stream. ``herald deadletter replay`` makes it pending
again and publishes it; every guard and the claim run again, so a replay never sends what has
since been cancelled, has expired or opted out.

The same stream records messages on a herald queue that herald could not work on (entries of
``type`` ``message``, see ``herald.state.poison``): they are listed, never replayed, and dropped with
``herald deadletter drop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery

from herald import clock
from herald.config import Settings
from herald.state import store
from herald.state.fanout import publish_deliveries
from herald.state.poison import MESSAGE


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the dead-letter stream: a dead delivery, or a message (``type`` ``message``,
    with its queue, task name and a masked sample instead of a delivery key)."""

    entry_id: str
    key: str
    channel: str
    reason: str
    attempts: str
    at: str
    type: str = ""
    queue: str = ""
    task: str = ""
    message: str = ""

    @property
    def is_message(self) -> bool:
        """True for a message herald could not work on (nothing to replay)."""
        return self.type == MESSAGE


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
                f.get("type", ""),
                f.get("queue", ""),
                f.get("task", ""),
                f.get("message", ""),
            )
        )
    return out


def all_dead(client: redis.Redis) -> list[DeadLetter]:
    """Every entry of the dead-letter stream, oldest first."""
    letters: list[DeadLetter] = []
    after = "-"
    while batch := list_dead(client, count=1000, after=after):
        letters.extend(batch)
        after = "(" + batch[-1].entry_id
    return letters


def replay(
    client: redis.Redis, app: Celery, settings: Settings, wanted: list[str]
) -> tuple[list[str], list[str]]:
    """Replay dead letters named by entry id or delivery key (all when ``wanted`` is empty).

    Returns (replayed delivery keys, names that matched no dead delivery).
    """
    letters = [d for d in all_dead(client) if not d.is_message]  # a message has nothing to replay
    chosen = [d for d in letters if not wanted or d.entry_id in wanted or d.key in wanted]
    unknown = [w for w in wanted if not any(w in (d.entry_id, d.key) for d in letters)]
    script = client.register_script(store.script_source("replay"))
    replayed: list[str] = []
    for letter in chosen:
        args: list[str | float] = [store.PREFIX, letter.key, clock.offset(), settings.hold_seconds]
        if script(keys=[store.delivery_redis_key(letter.key), store.DEADLINES], args=args):
            replayed.append(letter.key)
    if replayed:
        publish_deliveries(app, client, replayed, settings.channel_batch, settings.visibility_timeout)
    if chosen:
        client.xdel(store.DEADLETTER, *[d.entry_id for d in chosen])
    return sorted(set(replayed)), unknown


def drop(client: redis.Redis, entry_ids: list[str], *, messages: bool = False) -> tuple[list[str], list[str]]:
    """Remove dead-letter entries: those named by entry id, and with ``messages`` every message
    entry. Returns (removed entry ids, ids that named no entry)."""
    letters = all_dead(client)
    chosen = [d.entry_id for d in letters if d.entry_id in entry_ids or (messages and d.is_message)]
    unknown = [i for i in entry_ids if i not in chosen]
    if chosen:
        client.xdel(store.DEADLETTER, *chosen)
    return chosen, unknown
