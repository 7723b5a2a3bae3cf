"""Duplicate: the same kind of reminder already went to this account on this channel lately.

(A delivery key that was already sent never reaches the guards: its state is no longer
pending.) Upstream systems sometimes decide the same notice twice under different ids; within
``HERALD_DUPLICATE_WINDOW`` seconds the second one ends ``duplicate``.
"""

from __future__ import annotations

from herald.guards.base import Delivery, Guard, GuardContext, Skip, Verdict
from herald.models import Outcome
from herald.state import store

RECENT = f"{store.PREFIX}recent:"
"""The prefix of duplicate marks (``lua/load.lua`` builds their names from it too)."""


def recent_key(account: str, kind: str, channel: str) -> str:
    """``<claim time> <delivery key>`` of the last ``kind`` to ``account`` on ``channel``.

    The time is herald's clock (not the key's TTL, which only cleans up), so the window moves
    with a shifted clock like every other wait.
    """
    return f"{RECENT}{account}:{kind}:{channel}"


class DuplicateGuard(Guard):
    """Skips a delivery when another of the same kind reached the account on the channel lately.

    Parameters: ``HERALD_DUPLICATE_WINDOW`` (seconds; 0 turns it off). Hook: ``check`` looks at the
    marks the claim leaves, as read with the batch (or in one pipeline); the claim checks and
    sets them atomically.
    """

    name = "duplicate"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Skip the deliveries another delivery of their kind has just preceded."""
        if ctx.settings.duplicate_window <= 0 or not batch:
            return {}
        answers: list[bytes | None]
        if all(d.seen is not None for d in batch):  # read with the batch (lua/load.lua)
            answers = [d.seen.mark if d.seen is not None else None for d in batch]
        else:
            async with ctx.redis.pipeline(transaction=False) as pipe:
                for d in batch:
                    pipe.get(recent_key(d.state.get("account_id", ""), d.state.get("kind", ""), d.channel))
                answers = await pipe.execute()
        verdicts: dict[str, Verdict] = {}
        for d, mark in zip(batch, answers, strict=True):
            if mark is None:
                continue
            at, _, earlier = mark.decode().partition(" ")
            if earlier != d.key and ctx.now - float(at) < ctx.settings.duplicate_window:
                reason = f"the same kind went to this account on this channel recently ({earlier})"
                verdicts[d.key] = Skip(Outcome.DUPLICATE, reason)
        return verdicts
