"""Expired: the reminder's ``expires_at`` has passed; what it says is no longer true."""

from __future__ import annotations

from herald.guards.base import Delivery, Guard, GuardContext, Skip, Verdict
from herald.models import Outcome
from herald.state.store import iso


class ExpiredGuard(Guard):
    """Skips deliveries at or past their expiry with outcome ``expired``.

    Parameters: none (expiry is stored on each delivery at intake, from the reminder or its
    kind's default). Hook: ``check`` compares it with the batch's ``now``.
    """

    name = "expired"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Skip the deliveries whose expiry is not after now."""
        verdicts: dict[str, Verdict] = {}
        for d in batch:
            expires = d.time("expires_at")
            if expires is not None and ctx.now >= expires:
                verdicts[d.key] = Skip(Outcome.EXPIRED, f"expired at {iso(expires)}")
        return verdicts
