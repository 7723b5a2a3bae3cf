"""A worker that dies between the claim and the record leaves the delivery in doubt; an
operator lists and settles it. Nothing is resent by itself."""

from __future__ import annotations

import asyncio
import json

import pytest

from herald.pipeline import BatchReport, claim, load
from herald.producer import Producer
from herald.runtime import Runtime
from tests.harness import Herald, make_reminder

pytestmark = pytest.mark.integration


class Unpublished(Producer):
    def publish(self, deliveries: list[str], categories: dict[str, str] | None = None) -> None:
        """Keep the keys away from the session's workers: this test claims them itself."""


def test_an_ended_lease_is_in_doubt_listed_and_resolved_by_an_operator(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    settings = system.settings()
    Unpublished(settings).enqueue(reminder)
    key = f"{reminder['id']}:sms"

    async def claim_and_die() -> str:
        rt = Runtime(settings)
        try:
            batch = await load(rt, "sms", [key], BatchReport())
            return (await claim(rt, batch))[key][0]
        finally:
            await rt.close()

    assert asyncio.run(claim_and_die()) == "claimed"
    assert system.delivery(key)["state"] == "sending"

    system.shift_clock(settings.lease_seconds + 60)  # the lease ends with no result recorded
    state = system.wait_outcome(key)
    assert state["outcome"] == "in_doubt"
    assert "lease ended" in state["reason"]
    assert system.outbox_lines("sms", reminder["id"]) == []

    listed = system.cli("status", "--in-doubt", "--json")
    assert listed.returncode == 0, listed.stderr
    assert key in [row["key"] for row in json.loads(listed.stdout)]

    resolved = system.cli(
        "resolve", key, "--not-sent", "--reason", "not in the provider's log", "--by", "ops-li"
    )
    assert resolved.returncode == 0, resolved.stderr
    state = system.delivery(key)
    assert state["outcome"] == "failed"
    assert "ops-li" in state["reason"]
    assert key not in system.cli("status", "--in-doubt").stdout
    assert system.cli("resolve", key, "--sent").returncode == 1
