"""A worker process with more batches in hand than Redis connections queues its Redis calls: none
is taken for an outage, backed off or retried (a deep backlog once did that here)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from herald.delivery.pipeline import process_batch
from herald.delivery.runtime import Runtime
from tests.harness import Herald, Unpublished, make_reminder

pytestmark = pytest.mark.integration

BATCHES = 200
"""More batches at once than a worker process's Redis connections (64)."""


def test_more_batches_than_connections_wait_for_one_and_are_all_sent(
    system: Herald, caplog: pytest.LogCaptureFixture
) -> None:
    settings = system.settings().model_copy(update={"rate_sms": "off"})  # every one may go now
    reminders = [make_reminder(channels=["sms"], account_id=f"acct-pool-{i}") for i in range(BATCHES)]
    Unpublished(settings).enqueue_many(reminders)
    keys = [f"{r['id']}:sms" for r in reminders]

    async def work() -> None:
        rt = Runtime(settings)
        try:
            await asyncio.gather(*(process_batch(rt, "sms", [key]) for key in keys))
        finally:
            await rt.close()

    with caplog.at_level(logging.WARNING, logger="herald"):
        asyncio.run(work())
    assert [r.getMessage() for r in caplog.records if "redis unavailable" in r.getMessage()] == []
    unsent = {key: state for key in keys if (state := system.delivery(key)).get("outcome") != "sent"}
    assert unsent == {}
