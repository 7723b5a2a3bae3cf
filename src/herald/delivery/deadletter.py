"""Dead letters: deliveries that ran out of retries, listed and put back to work.

A delivery whose safe-to-retry failures outlast ``HERALD_RETRY_DEADLINE`` ends ``dead`` and is
appended to the ``herald:deadletter`` stream. ``herald deadletter replay`` makes it pending
again and publishes it; every guard and the claim run again, so a replay never sends what has
since been cancelled, has expired or opted out. It goes through the stream a batch at a time
(``REPLAY_BATCH`` entries), so a stream of any length is replayed in bounded memory and its
progress can be shown.

The same stream records messages on a herald queue that herald could not work on (entries of
``type`` ``message``, see ``herald.state.poison``): they are listed, never replayed, and dropped with
``herald deadletter drop``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery import Celery
from redis.commands.core import Script

from herald import clock
from herald.config import Settings
from herald.state import store
from herald.state.fanout import publish_deliveries
from herald.state.poison import MESSAGE

REPLAY_BATCH = 500
"""Dead-letter entries a replay reads, replays, publishes and removes at a time: its memory
stays bounded however long the stream is, and each batch is progress a person can see."""


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


def list_dead(
    client: redis.Redis, *, count: int = 100, after: str = "-", upto: str = "+"
) -> list[DeadLetter]:
    """Up to ``count`` dead letters, oldest first, from stream id ``after`` on (up to ``upto``,
    included: a replay stops at the stream's end as it was when it began)."""
    entries = client.xrange(store.DEADLETTER, min=after, max=upto, count=count)
    out = []
    for entry_id, raw in entries or []:
        f = store.decode_hash(raw or {})
        out.append(
            DeadLetter(
                store.text(entry_id),
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


def length(client: redis.Redis) -> int:
    """How many entries the dead-letter stream holds (dead deliveries and messages): what a
    replay goes through, so the total of its progress."""
    return int(client.xlen(store.DEADLETTER))


def replay(
    client: redis.Redis,
    app: Celery,
    settings: Settings,
    wanted: list[str],
    *,
    batch: int = REPLAY_BATCH,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], list[str]]:
    """Replay dead letters named by entry id or delivery key (all when ``wanted`` is empty).

    The stream is gone through ``batch`` entries at a time, up to its last entry when the replay
    began (a delivery that dies again meanwhile waits for the next replay): each batch's chosen
    deliveries are made pending again (``lua/replay.lua``: only one still ``dead``), published,
    and their entries removed before the next batch is read, so memory stays bounded and a
    replay cut short leaves the rest of the stream as it was. ``progress(n)`` is called after
    each batch with the entries it went through (message entries and entries not wanted
    included): the calls add up to :func:`length` as it was at the start.

    Returns (replayed delivery keys, sorted; names that matched no dead delivery).
    """
    names = set(wanted)
    found: set[str] = set()
    replayed: set[str] = set()
    newest = client.xrevrange(store.DEADLETTER, count=1)
    if not newest:
        return [], list(wanted)
    upto = store.text(newest[0][0])
    script = client.register_script(store.script_source("replay"))
    after = "-"
    while letters := list_dead(client, count=batch, after=after, upto=upto):
        after = "(" + letters[-1].entry_id
        dead = [d for d in letters if not d.is_message]  # a message has nothing to replay
        found.update(name for d in dead for name in (d.entry_id, d.key) if name in names)
        chosen = [d for d in dead if not names or d.entry_id in names or d.key in names]
        if chosen:
            replayed.update(_replay_batch(client, app, settings, script, chosen))
            client.xdel(store.DEADLETTER, *[d.entry_id for d in chosen])
        if progress is not None:
            progress(len(letters))
    return sorted(replayed), [w for w in wanted if w not in found]


def _replay_batch(
    client: redis.Redis, app: Celery, settings: Settings, script: Script, chosen: list[DeadLetter]
) -> list[str]:
    """Make ``chosen``'s deliveries that are still dead pending again (one pipelined round
    trip) and publish them; their keys."""
    offset = clock.offset()
    with client.pipeline(transaction=False) as pipe:
        for letter in chosen:
            args: list[str | float] = [store.PREFIX, letter.key, offset, settings.hold_seconds]
            script(keys=[store.delivery_redis_key(letter.key), store.DEADLINES], args=args, client=pipe)
        answers = pipe.execute()
    pending = list(dict.fromkeys(d.key for d, ok in zip(chosen, answers, strict=True) if ok))
    if pending:
        publish_deliveries(app, client, pending, settings.channel_batch, settings.visibility_timeout)
    return pending


def drop(client: redis.Redis, entry_ids: list[str], *, messages: bool = False) -> tuple[list[str], list[str]]:
    """Remove dead-letter entries: those named by entry id, and with ``messages`` every message
    entry. Returns (removed entry ids, ids that named no entry)."""
    letters = all_dead(client)
    chosen = [d.entry_id for d in letters if d.entry_id in entry_ids or (messages and d.is_message)]
    unknown = [i for i in entry_ids if i not in chosen]
    if chosen:
        client.xdel(store.DEADLETTER, *chosen)
    return chosen, unknown
