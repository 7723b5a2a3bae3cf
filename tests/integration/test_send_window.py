"""Collection contact only within the recipient's allowed hours; a night passes without sleep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.harness import Herald, make_reminder, running_herald

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    env = {
        "HERALD_SEND_WINDOW": "08:00-22:00",
        "HERALD_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "HERALD_DUPLICATE_WINDOW": "3600",
    }
    with running_herald(tmp_path_factory.mktemp("windowed"), repo_root, env) as system:
        yield system


def _offset_to(local: time) -> tuple[float, datetime]:
    """The clock shift that makes it the next ``local`` time in Shanghai, and that moment."""
    now = datetime.now(SHANGHAI)
    target = datetime.combine(now.date(), local, tzinfo=SHANGHAI)
    if target <= now:
        target += timedelta(days=1)
    return target.timestamp() - now.timestamp(), target


def test_a_collection_reminder_at_2330_waits_for_0800_and_is_sent_then(windowed: Herald) -> None:
    shift, late = _offset_to(time(23, 30))
    windowed.shift_clock(shift)
    try:
        reminder = make_reminder(channels=["sms"])
        windowed.producer().enqueue(reminder)
        key = f"{reminder['id']}:sms"
        waiting = windowed.wait_state(key, "scheduled")
        opening = datetime.combine(late.date() + timedelta(days=1), time(8, 0), tzinfo=SHANGHAI)
        assert float(waiting["due"]) == pytest.approx(opening.timestamp(), abs=1)
        assert "send window" in waiting["reason"]
        assert windowed.outbox_lines("sms", reminder["id"]) == []

        windowed.shift_clock(shift + (opening - late).total_seconds() + 30)
        assert windowed.wait_outcome(key)["outcome"] == "sent"
        (line,) = windowed.outbox_lines("sms", reminder["id"])
        sent_at = datetime.fromisoformat(line["at"]).astimezone(SHANGHAI)
        assert time(8, 0) <= sent_at.time() < time(8, 5)
    finally:
        windowed.shift_clock(0)


def test_agreement_reminders_are_not_bound_by_the_collection_window(windowed: Herald) -> None:
    shift, _ = _offset_to(time(23, 30))
    windowed.shift_clock(shift)
    try:
        today = datetime.now(UTC).date()
        reminder = make_reminder(
            kind="installment_due",
            channels=["sms"],
            data={
                "borrower_name": "李伟",
                "agreement_ref": "AGR-9",
                "loan_ref": "HL-9",
                "installment_no": 2,
                "installment_count": 6,
                "amount_due": "800.00",
                "plan_balance": "4000.00",
                "currency": "CNY",
                "due_date": (today + timedelta(days=3)).isoformat(),
                "service_phone": "95188",
            },
        )
        windowed.producer().enqueue(reminder)
        assert windowed.wait_outcome(f"{reminder['id']}:sms")["outcome"] == "sent"
    finally:
        windowed.shift_clock(0)


def test_the_same_kind_to_the_same_account_twice_within_the_window_is_a_duplicate(windowed: Herald) -> None:
    shift, _ = _offset_to(time(10, 0))
    windowed.shift_clock(shift)
    try:
        first = make_reminder(account_id="acct-dup", channels=["sms", "email"])
        windowed.producer().enqueue(first)
        for channel in ("sms", "email"):
            assert windowed.wait_outcome(f"{first['id']}:{channel}")["outcome"] == "sent"
        again = make_reminder(account_id="acct-dup", channels=["sms"])  # decided twice upstream
        windowed.producer().enqueue(again)
        state = windowed.wait_outcome(f"{again['id']}:sms")
        assert state["outcome"] == "duplicate"
        assert f"{first['id']}:sms" in state["reason"]

        windowed.shift_clock(shift + 2 * 3600)  # past the window: a new notice may go
        later = make_reminder(account_id="acct-dup", channels=["sms"])
        windowed.producer().enqueue(later)
        assert windowed.wait_outcome(f"{later['id']}:sms")["outcome"] == "sent"
    finally:
        windowed.shift_clock(0)
