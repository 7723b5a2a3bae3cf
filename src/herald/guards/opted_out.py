"""Opted out: the recipient asked not to be contacted on this channel."""

from __future__ import annotations

from herald.guards.base import Delivery, Guard, GuardContext, Skip, Verdict
from herald.models import Outcome
from herald.state import store


class OptedOutGuard(Guard):
    """Skips deliveries whose every address is opted out, with outcome ``opted_out``.

    Parameters: none. Hook: ``check`` asks Redis once per batch (pipelined ``SMISMEMBER``) and
    drops opted-out push tokens from a delivery that still has others. The claim checks again.
    """

    name = "opted_out"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Skip the deliveries with no address left to use."""
        with_addresses = [d for d in batch if d.addresses]
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for d in with_addresses:
                pipe.smismember(store.optout_key(d.channel), d.addresses)
            answers = await pipe.execute()
        verdicts: dict[str, Verdict] = {}
        for d, flags in zip(with_addresses, answers, strict=True):
            d.addresses = [a for a, out in zip(d.addresses, flags, strict=True) if not out]
            if not d.addresses:
                verdicts[d.key] = Skip(Outcome.OPTED_OUT, "the recipient opted out of this channel")
        return verdicts
