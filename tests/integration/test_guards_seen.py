"""The guards decide the same on what the batch's take read for them (``lua/load.lua``) as on
their own reads of Redis: holds and supersession, duplicate marks and caps, on a real
redis-server with herald's default caps and duplicate window."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald.config import Settings
from herald.delivery.pipeline import BatchReport, load
from herald.delivery.runtime import Runtime
from herald.guards import Delivery, GuardContext, Verdict
from herald.guards.duplicate import recent_key
from herald.holds.agreements import apply_event
from herald.holds.suppression import Hold, SuppressionStore
from herald.state import store
from tests.harness import Unpublished, make_reminder, redis_of_its_own

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Settings]:
    with redis_of_its_own(tmp_path_factory.mktemp("guards-seen")) as url:
        yield Settings(redis_url=url, templates_dir=repo_root / "templates", send_window="00:00-24:00")


def _verdicts(settings: Settings, batch: list[Delivery]) -> dict[str, Verdict]:
    """Every guard's verdicts over ``batch``, in the chain's order."""

    async def run() -> dict[str, Verdict]:
        rt = Runtime(settings)
        try:
            ctx = GuardContext(settings, rt.redis, rt.clock())
            found: dict[str, Verdict] = {}
            going = list(batch)
            for guard in rt.guards:
                verdicts = await guard.check(going, ctx)
                found.update(verdicts)
                going = [d for d in going if d.key not in verdicts]
            return found
        finally:
            await rt.close()

    return asyncio.run(run())


def test_the_guards_decide_the_same_on_the_reads_taken_with_the_batch(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    holds = SuppressionStore(client)
    plain, held, superseded, duplicated, capped = (make_reminder(channels=["sms"]) for _ in range(5))
    for i, reminder in enumerate((plain, held, superseded, duplicated, capped)):
        reminder["account_id"] = f"acct-seen-{reminder['id']}-{i}"
    Unpublished(settings).enqueue_many([plain, held, superseded, duplicated, capped])
    holds.add(
        Hold(
            id="operator:seen", account_id=held["account_id"], source="operator", reason="complaint", by="ops"
        )
    )
    apply_event(holds, superseded["account_id"], "AGR-SEEN", "signed")
    apply_event(holds, superseded["account_id"], "AGR-SEEN", "completed")  # lifted: superseded remains
    now = float(client.time()[0])
    mark = recent_key(duplicated["account_id"], duplicated["kind"], "sms")
    client.set(mark, f"{now - 60:.6f} earlier-reminder:sms")
    cap = store.cap_key(capped["account_id"], "sms", "collection")
    client.zadd(cap, {"one:sms": now - 600, "two:sms": now - 300})
    keys = [f"{r['id']}:sms" for r in (plain, held, superseded, duplicated, capped)]

    async def take() -> list[Delivery]:
        rt = Runtime(settings)
        try:
            return await load(rt, "sms", keys, BatchReport())
        finally:
            await rt.close()

    batch = asyncio.run(take())
    assert all(d.seen is not None for d in batch)
    seen = _verdicts(settings, batch)
    read = _verdicts(settings, [dataclasses.replace(d, seen=None) for d in batch])

    assert seen == read
    assert set(seen) == set(keys) - {keys[0]}  # every one but the plain reminder is stopped
