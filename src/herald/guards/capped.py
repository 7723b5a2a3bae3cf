"""Over the cap (frequency caps): at most N contacts of an account on a channel and category per window.

Configured as ``HERALD_CAPS``, e.g. ``sms.collection=2/24h,1/4h;email.collection=3/24h``: at
most 2 collection SMS a day and 1 per 4 hours, and 3 collection emails a day. The count is kept
per account, channel and category in a Redis sorted set of claim times, and enforced inside
the atomic claim, so it holds across any number of worker processes. Over the cap, a delivery
is scheduled for when the cap allows it (``HERALD_CAP_ACTION=defer``, the default) or ends
``capped`` (``HERALD_CAP_ACTION=drop``).
"""

from __future__ import annotations

from herald.guards.base import Defer, Delivery, Guard, GuardContext, Skip, Verdict
from herald.models import Outcome
from herald.state.store import cap_key, iso
from herald.values.caps import parse_caps


class CapGuard(Guard):
    """Defers (or, with ``HERALD_CAP_ACTION=drop``, ends ``capped``) deliveries over a cap.

    Parameters: ``HERALD_CAPS`` and ``HERALD_CAP_ACTION`` (see the module docstring). Hook: ``check``
    counts recent contacts, as read with the batch (or in one pipeline). It is a pre-filter:
    the claim counts again atomically, so deliveries of one account racing in other processes
    cannot pass together.
    """

    name = "capped"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Set aside the deliveries the caps do not allow now."""
        caps = parse_caps(ctx.settings.caps)
        capped = [d for d in batch if (d.channel, d.category) in caps]
        if not capped:
            return {}
        answers: list[list[tuple[bytes, float]]]
        if all(d.seen is not None and d.seen.cap is not None for d in capped):  # read with the batch
            answers = [d.seen.cap if d.seen is not None and d.seen.cap is not None else [] for d in capped]
        else:
            async with ctx.redis.pipeline(transaction=False) as pipe:
                for d in capped:
                    longest = max(window for _, window in caps[(d.channel, d.category)])
                    key = cap_key(d.state.get("account_id", ""), d.channel, d.category)
                    pipe.zrangebyscore(key, ctx.now - longest, "+inf", withscores=True)
                answers = await pipe.execute()
        verdicts: dict[str, Verdict] = {}
        for d, recent in zip(capped, answers, strict=True):
            times = sorted(score for _, score in recent)
            allowed_at = 0.0
            for count, window in caps[(d.channel, d.category)]:
                inside = [t for t in times if t > ctx.now - window]
                if len(inside) >= count:
                    allowed_at = max(allowed_at, inside[len(inside) - count] + window)
            if allowed_at:
                if ctx.settings.cap_action == "drop":
                    verdicts[d.key] = Skip(Outcome.CAPPED, "over the frequency cap for this account")
                else:
                    verdicts[d.key] = Defer(
                        allowed_at, f"over the frequency cap; allowed again at {iso(allowed_at)}"
                    )
        return verdicts
