"""Cancelled: the reminder was withdrawn upstream (e.g. the borrower just paid)."""

from __future__ import annotations

from herald.guards.base import Delivery, Guard, GuardContext, Skip, Verdict
from herald.models import Outcome


class CancelledGuard(Guard):
    """Skips every delivery of a cancelled reminder with outcome ``cancelled``.

    Parameters: none. Hook: ``check`` reads ``cancelled_at`` from each reminder's record,
    which the pipeline has already loaded with the batch (no extra round trip).
    """

    name = "cancelled"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Skip the deliveries whose reminder carries a cancellation."""
        return {
            d.key: Skip(Outcome.CANCELLED, "withdrawn upstream")
            for d in batch
            if d.record.get("cancelled_at")
        }
