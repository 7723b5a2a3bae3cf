"""The claim is the decision: a hold added after the guards ran still stops the send.

Runs the pipeline in this process against the session's real redis-server, with one extra
guard at the end of the chain that adds the hold — exactly between the pre-filter and the
claim — and an outbox provider in a temporary folder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from herald.delivery.pipeline import process_batch
from herald.delivery.runtime import Runtime
from herald.guards import Delivery, Guard, GuardContext, Verdict
from herald.holds.agreements import apply_event
from herald.holds.suppression import SuppressionStore
from tests.harness import Herald, Unpublished, make_reminder

pytestmark = pytest.mark.integration


class HoldAfterTheGuards(Guard):
    """Signs an agreement for the batch's account once every other guard has passed it."""

    name = "test-race"

    def __init__(self, holds: SuppressionStore, account: str) -> None:
        self.holds = holds
        self.account = account

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        apply_event(self.holds, self.account, "AGR-RACE", "signed")
        return {}


def test_a_hold_added_between_the_pre_filter_and_the_claim_stops_the_send(
    system: Herald, tmp_path: Path
) -> None:
    reminder = make_reminder(account_id="acct-race-1", channels=["sms"])
    settings = system.settings().model_copy(update={"outbox_dir": tmp_path})
    assert Unpublished(settings).enqueue(reminder).status == "accepted"
    key = f"{reminder['id']}:sms"

    async def run() -> dict[str, str]:
        rt = Runtime(settings)
        rt.guards.append(HoldAfterTheGuards(SuppressionStore(system.redis()), "acct-race-1"))
        try:
            return (await process_batch(rt, "sms", [key])).outcomes
        finally:
            await rt.close()

    assert asyncio.run(run()) == {key: "suppressed"}
    state = system.delivery(key)
    assert state["outcome"] == "suppressed"
    assert "agreement AGR-RACE" in state["reason"]
    assert state["attempts"] == "0"  # never claimed
    outbox = tmp_path / "sms.jsonl"
    assert not outbox.exists() or outbox.read_bytes() == b""  # opened at start-up, nothing written
