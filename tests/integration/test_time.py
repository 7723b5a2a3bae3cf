"""Waits go through the scheduler, and time is travelled, never slept through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.harness import Herald, make_reminder

pytestmark = pytest.mark.integration


def test_not_before_waits_in_the_scheduler_then_sends(system: Herald) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    reminder = make_reminder(channels=["sms"], not_before=start.isoformat())
    system.producer().enqueue(reminder)
    key = f"{reminder['id']}:sms"

    waiting = system.wait_state(key, "scheduled")
    assert float(waiting["due"]) == pytest.approx(start.timestamp(), abs=0.01)
    assert system.redis().zscore("herald:scheduled", key) is not None
    assert system.outbox_lines("sms", reminder["id"]) == []

    system.shift_clock(2 * 3600)
    assert system.wait_outcome(key)["outcome"] == "sent"
    assert system.redis().zscore("herald:scheduled", key) is None
    assert len(system.outbox_lines("sms", reminder["id"])) == 1


def test_a_reminder_that_expires_while_waiting_is_never_sent(system: Herald) -> None:
    now = datetime.now(UTC)
    reminder = make_reminder(
        channels=["sms", "email"],
        not_before=(now + timedelta(hours=1)).isoformat(),
        expires_at=(now + timedelta(hours=2)).isoformat(),
    )
    system.producer().enqueue(reminder)
    for channel in ("sms", "email"):
        system.wait_state(f"{reminder['id']}:{channel}", "scheduled")

    system.shift_clock(3 * 3600)
    for channel in ("sms", "email"):
        state = system.wait_outcome(f"{reminder['id']}:{channel}")
        assert state["outcome"] == "expired"
    assert system.outbox_lines("sms", reminder["id"]) == []
    assert system.outbox_lines("email", reminder["id"]) == []
