"""A collection reminder being retried is not sent once its account is held."""

from __future__ import annotations

import pytest

from herald.holds.agreements import apply_event
from herald.holds.suppression import SuppressionStore
from tests.harness import Herald
from tests.providers.conftest import Providers
from tests.providers.helpers import fresh_phone, sms

pytestmark = pytest.mark.integration


def test_a_reminder_in_retry_is_suppressed_when_the_account_is_held(
    system: Herald, providers: Providers
) -> None:
    providers.twilio.set_outage(503)
    phone = fresh_phone()
    reminder = sms(phone, account_id="acct-retry-held")
    system.producer().enqueue(reminder)
    key = f"{reminder['id']}:sms"
    system.wait_state(key, "retrying")

    apply_event(SuppressionStore(system.redis()), "acct-retry-held", "AGR-R", "signed")
    providers.twilio.set_outage(None)
    system.shift_clock(2 * 3600)
    state = system.wait_outcome(key)
    assert state["outcome"] == "suppressed"
    assert providers.twilio.accepted_to(phone) == []
