"""What a worker process holds, renewed while it is alive (``lua/keep.lua``).

A process that takes a batch becomes responsible for its deliveries: each gets the process's
holder id and a deadline ``HERALD_HOLD_SECONDS`` ahead; a delivery it claims gets a lease as
long. While the process lives, the keeper renews both every third of that time, in one script
call for everything it holds, and stops renewing a delivery once it is recorded (finished or set
aside). When the process dies (SIGKILL, OOM, power), nothing renews them: the reconciler
re-publishes the taken deliveries and the scheduler's lease sweep settles the claimed ones
(``in_doubt``) within ``HERALD_HOLD_SECONDS`` plus their own interval — well inside the 90 s
herald promises, whatever the visibility timeout.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from herald import clock
from herald.delivery.retry import REDIS_DOWN
from herald.state import store

log = logging.getLogger("herald.delivery.keeper")


class Keeper:
    """Renews this process's holds and leases in Redis until they are recorded.

    Parameters: the process's async Redis client, the ``keep`` script, its ``holder`` id and
    ``hold`` (seconds). Hook: :meth:`run`, a task on the process's loop (started by the
    runtime), which renews every ``hold / 3`` seconds.
    """

    def __init__(self, client: aioredis.Redis, script: AsyncScript, holder: str, hold: float) -> None:
        self.redis = client
        self.script = script
        self.holder = holder
        self.hold = hold
        self.held: dict[str, str] = {}  # delivery key -> its claim's token ('' while only taken)

    def take(self, keys: list[str]) -> None:
        """The process took these deliveries (``lua/load.lua`` set their holder and deadline)."""
        for key in keys:
            self.held.setdefault(key, "")

    def claimed(self, key: str, token: str) -> None:
        """The process claimed ``key`` under ``token``: from now on its lease is what is renewed."""
        self.held[key] = token

    def release(self, key: str, token: str | None = None) -> None:
        """``key`` was recorded (or handed back): nothing of it is renewed any more. With
        ``token``, only while the process holds it under that token ('' for taken, not claimed):
        a second copy of a delivery that this process claimed in another batch (a message
        delivered twice) must not stop the renewal of the first one's lease."""
        if token is None or self.held.get(key) == token:
            self.held.pop(key, None)

    async def hand_back(self, queued: AsyncScript, keys: list[str] | None = None) -> int:
        """Let go of ``keys`` (by default every delivery taken and not claimed: a process closing
        its runtime): their deadline is now, so the reconciler publishes them again on its next
        pass. Claimed ones are left to their lease. Returns how many were handed back."""
        wanted = self.held if keys is None else {k: self.held.get(k, "") for k in keys}
        unclaimed = [key for key, token in wanted.items() if not token]
        if unclaimed:
            args: list[str | float] = [store.PREFIX, clock.offset(), 0, self.holder, *unclaimed]
            await queued(keys=[store.DEADLINES], args=args)
        for key in unclaimed:
            self.held.pop(key, None)
        return len(unclaimed)

    async def renew(self) -> int:
        """Renew everything held, in one call; returns how many are still held."""
        if not self.held:
            return 0
        sent = dict(self.held)
        args: list[str | float] = [store.PREFIX, clock.offset(), self.hold, self.holder]
        for key, token in sent.items():
            args += [key, token]
        lost = await self.script(keys=[store.DEADLINES, store.LEASES], args=args)
        for raw in lost:
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            if key in self.held and self.held[key] == sent.get(key):  # not claimed meanwhile
                del self.held[key]
        return len(self.held)

    async def run(self) -> None:
        """Renew every third of the hold until cancelled; a Redis outage is waited out (what
        is held may lapse meanwhile: then the reconciler or the lease sweep takes over)."""
        while True:
            await asyncio.sleep(self.hold / 3)
            try:
                await self.renew()
            except REDIS_DOWN as exc:
                log.warning("could not renew %d holds and leases: %s", len(self.held), exc)
