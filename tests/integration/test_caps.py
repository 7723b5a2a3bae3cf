"""Frequency caps hold across worker processes sending at once; time travels, never sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Herald, make_reminder, running_herald

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    env = {
        "HERALD_CAPS": "sms.collection=2/24h,1/4h",
        "HERALD_CHANNEL_BATCH": "1",  # one delivery per message: both worker processes take part
    }
    with running_herald(tmp_path_factory.mktemp("capped"), repo_root, env) as system:
        yield system


def test_two_a_day_and_one_per_four_hours_across_two_worker_processes(capped: Herald) -> None:
    reminders = [make_reminder(account_id="acct-capped", channels=["sms"]) for _ in range(6)]
    keys = [f"{r['id']}:sms" for r in reminders]
    capped.producer().enqueue_many(reminders)
    try:
        states = [capped.wait_until_settled(k) for k in keys]
        sent = [k for k, s in zip(keys, states, strict=True) if s.get("outcome") == "sent"]
        assert len(sent) == 1
        waiting = [s for s in states if s.get("state") == "scheduled"]
        assert len(waiting) == 5
        assert all("frequency cap" in s["reason"] for s in waiting)

        capped.shift_clock(4 * 3600 + 120)  # the 4-hour rule allows one more today
        assert capped.wait_count_sent(keys, 2) == 2

        capped.shift_clock(8 * 3600 + 240)  # still inside the day: 2 a day holds
        assert capped.wait_count_sent(keys, 2, settle=True) == 2
        assert sum(len(capped.outbox_lines("sms", r["id"])) for r in reminders) == 2
    finally:
        capped.shift_clock(0)


def test_other_accounts_are_not_held_back_by_a_capped_one(capped: Herald) -> None:
    reminder = make_reminder(account_id="acct-not-capped", channels=["sms"])
    capped.producer().enqueue(reminder)
    assert capped.wait_outcome(f"{reminder['id']}:sms")["outcome"] == "sent"
