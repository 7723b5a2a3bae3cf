"""A lease that ended without a result, in a category configured to resend: back to `retrying`,
counted as a retry and given a new deadline, like any other retry (no worker runs here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald.config import Settings
from herald.delivery.scheduler import Scheduler
from herald.state import store
from herald.state.queues import make_celery
from tests.harness import Unpublished, claim_only, make_reminder, redis_of_its_own

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, repo_root: Path) -> Iterator[Settings]:
    with redis_of_its_own(tmp_path) as url:
        yield Settings(
            redis_url=url,
            templates_dir=repo_root / "templates",
            outbox_dir=tmp_path / "outbox",
            send_window="00:00-24:00",
            caps="",
            duplicate_window=0,
            in_doubt_categories="agreement,transactional",  # collection: resent by policy
        )


def test_a_lost_lease_resent_by_policy_counts_as_a_retry(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reminder = make_reminder(channels=["sms"])  # an overdue notice: collection
    Unpublished(settings).enqueue(reminder)
    key = f"{reminder['id']}:sms"
    assert claim_only(settings, key) == "claimed"  # a worker that died before its send

    monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(settings.lease_seconds + 60))
    assert Scheduler(settings, make_celery(settings)).expire_leases() == [key]

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    state = client.hgetall(store.delivery_redis_key(key))
    assert state["state"] == "retrying"
    assert "resent by policy" in state["reason"]
    assert "token" not in state
    assert "lease_until" not in state
    assert state["retries"] == "1"  # counted towards HERALD_RETRY_DEADLINE
    assert state["first_failed_at"]
    due = float(state["due"])
    assert client.zscore(store.SCHEDULED, key) == due
    assert client.zscore(store.DEADLINES, key) == due + settings.visibility_timeout
    assert client.zscore(store.LEASES, key) is None
