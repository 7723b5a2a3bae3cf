"""Suppressed: the account is held (e.g. on a repayment agreement), or the delivery was decided
before the account's latest collection hold began (superseded)."""

from __future__ import annotations

from typing import Any

from herald.guards.base import Delivery, Guard, GuardContext, Skip, Verdict
from herald.holds import suppression
from herald.models import Outcome
from herald.state import store


class SuppressionUnknown(RuntimeError):
    """The suppression store cannot be trusted: nothing may be sent until it is."""


class SuppressedGuard(Guard):
    """Skips held and superseded deliveries with outcome ``suppressed`` and the hold's reason.

    Parameters: none. Hook: ``check`` uses the marker and, per account of the batch, its holds
    (with their marks), as read with the batch (or reads them in one pipeline). Without the
    marker (Redis restarted empty) it raises
    ``SuppressionUnknown``: the batch is set aside, nothing is sent (fail closed).
    """

    name = "suppressed"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Skip the deliveries a hold stops."""
        accounts = sorted({d.state.get("account_id", "") for d in batch})
        if all(d.seen is not None for d in batch):  # read with the batch (lua/load.lua)
            seen = {d.state.get("account_id", ""): d.seen for d in batch if d.seen is not None}
            answers: list[Any] = [all(s.marker for s in seen.values())]
            answers += [seen[account].holds for account in accounts]
        else:
            async with ctx.redis.pipeline(transaction=False) as pipe:
                pipe.exists(suppression.MARKER)
                for account in accounts:
                    pipe.hgetall(suppression.holds_key(account))
                answers = await pipe.execute()
        if not answers[0]:
            raise SuppressionUnknown(
                "the suppression store is not populated (marker missing: Redis restarted empty?); "
                "nothing is sent until `herald suppress rebuild` or `herald suppress init`"
            )
        read = {a: suppression.split_holds(a, answers[1 + i]) for i, a in enumerate(accounts)}
        verdicts: dict[str, Verdict] = {}
        for d in batch:
            account = d.state.get("account_id", "")
            holds, marks = read[account]
            blocking = suppression.active_holds(holds, d.category, ctx.now)
            if blocking:
                latest = max(blocking, key=lambda h: h.created_at)
                verdicts[d.key] = Skip(Outcome.SUPPRESSED, f"held: {latest.describe()}")
                continue
            if d.category == "collection":
                began, hold = marks.get("collection", (0.0, "?"))
                accepted = d.time("accepted_at") or 0.0
                if began and began >= accepted:  # the same millisecond counts as before
                    verdicts[d.key] = Skip(
                        Outcome.SUPPRESSED,
                        f"superseded: decided at {store.iso(accepted)}, before hold {hold} began at "
                        f"{store.iso(began)}",
                    )
        return verdicts
