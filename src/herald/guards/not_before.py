"""Not before: the reminder asked not to be sent before a time."""

from __future__ import annotations

from herald.guards.base import Defer, Delivery, Guard, GuardContext, Verdict
from herald.state.store import iso


class NotBeforeGuard(Guard):
    """Defers deliveries whose ``not_before`` is still ahead, to exactly that time.

    Parameters: none. Hook: ``check`` compares ``not_before`` with the batch's ``now``; the
    scheduler re-publishes the delivery when it is due and every guard runs again.
    """

    name = "not_before"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Defer the deliveries that are early."""
        verdicts: dict[str, Verdict] = {}
        for d in batch:
            start = d.time("not_before")
            if start is not None and ctx.now < start:
                verdicts[d.key] = Defer(start, f"not before {iso(start)}")
        return verdicts
