"""Redis stops in the middle of a delivery: nothing is sent while it is away, and afterwards
each delivery ends as it should — the one in flight recorded once, a held account's reminder
suppressed, the others sent once — and the worker consumes again.

A system of its own (its Redis is stopped), on the Twilio stand-in, whose answers can be kept
back so that a delivery is caught between its claim and its record.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald.holds import suppression
from herald.holds.agreements import apply_event
from herald.holds.suppression import SuppressionStore
from tests.harness import Herald, running_herald, wait_until
from tests.providers.conftest import SENDER, Providers
from tests.providers.helpers import fresh_phone, sms

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own(providers: Providers, tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    env = {
        "HERALD_SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": providers.twilio.account_sid,
        "TWILIO_AUTH_TOKEN": providers.twilio.auth_token,
        "HERALD_TWILIO_FROM": SENDER,
        "HERALD_TWILIO_API_BASE": providers.twilio.url,
        "HERALD_PROVIDER_TIMEOUT": "120",  # an answer kept back is slow, not lost
        "HERALD_REDIS_PATIENCE": "120",
    }
    with running_herald(tmp_path_factory.mktemp("herald-outage"), repo_root, env) as system:
        yield system


@pytest.fixture(autouse=True)
def _real_time_after(own: Herald) -> Iterator[None]:
    yield
    own.shift_clock(0)


def _later(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_redis_stopped_during_a_delivery(own: Herald, providers: Providers) -> None:
    twilio = providers.twilio
    assert own.redis_server is not None
    in_flight, held, waiting, after = (fresh_phone() for _ in range(4))
    stamp = datetime.now(UTC).strftime("%H%M%S%f")

    # Caught between the claim and the record: Twilio has it, its answer is kept back.
    twilio.pause_answers()
    first = sms(in_flight, account_id=f"acct-flight-{stamp}")
    own.producer().enqueue(first)
    twilio.wait_accepted(len(twilio.accepted) + 1)
    assert own.delivery(f"{first['id']}:sms")["state"] == "sending"

    # Two more wait for their time; one account gets held before Redis goes away.
    to_held = sms(held, account_id=f"acct-held-{stamp}", not_before=_later(600))
    to_wait = sms(waiting, account_id=f"acct-wait-{stamp}", not_before=_later(600))
    own.producer().enqueue_many([to_held, to_wait])
    for reminder in (to_held, to_wait):
        own.wait_state(f"{reminder['id']}:sms", "scheduled")
    apply_event(SuppressionStore(own.redis()), f"acct-held-{stamp}", f"AGR-{stamp}", "signed")

    own.redis_server.stop()
    try:
        twilio.resume_answers()  # the provider accepted it; the worker cannot record it yet
        own.shift_clock(700)  # both waiting reminders are now due, but nothing can reach Redis
    finally:
        own.redis_server.start()

    # The clock jumped past its lease while Redis was away, so the lease sweep may find it first
    # (in_doubt); the worker's answer then replaces the doubt: sent, once.
    flight = f"{first['id']}:sms"
    wait_until(lambda: own.delivery(flight).get("outcome") == "sent", 150, f"{flight} recorded sent")
    assert own.wait_outcome(f"{to_wait['id']}:sms", timeout=60)["outcome"] == "sent"
    suppressed = own.wait_outcome(f"{to_held['id']}:sms", timeout=60)
    assert suppressed["outcome"] == "suppressed"
    assert f"AGR-{stamp}" in suppressed["reason"]

    # The worker consumes again after the reconnect.
    last = sms(after, account_id=f"acct-after-{stamp}")
    own.producer().enqueue(last)
    assert own.wait_outcome(f"{last['id']}:sms", timeout=60)["outcome"] == "sent"

    sent_to = [m["to"] for m in twilio.accepted]
    assert [sent_to.count(p) for p in (in_flight, held, waiting, after)] == [1, 0, 1, 1]


def test_redis_restarted_empty_sends_nothing_and_says_why(own: Herald, providers: Providers) -> None:
    assert own.redis_server is not None
    own.redis_server.stop()
    for path in own.redis_server.data.rglob("*"):  # its AOF and any snapshot: it comes back empty
        if path.is_file():
            path.unlink()
    own.redis_server.start()
    # empty: no hold-store marker and no delivery (herald's processes write their heartbeats at once)
    assert own.redis().exists(suppression.MARKER) == 0
    assert own.redis().keys("herald:d:*") == []

    phone = fresh_phone()
    reminder = sms(phone, account_id=f"acct-empty-{datetime.now(UTC):%H%M%S%f}")
    own.producer().enqueue(reminder)
    key = f"{reminder['id']}:sms"
    waiting = own.wait_state(key, "scheduled", timeout=60)
    assert "marker missing" in waiting["reason"]
    assert providers.twilio.accepted_to(phone) == []

    assert own.cli("suppress", "init").returncode == 0  # the holds are back (none here)
    own.shift_clock(120)
    assert own.wait_outcome(key, timeout=60)["outcome"] == "sent"
    assert len(providers.twilio.accepted_to(phone)) == 1
