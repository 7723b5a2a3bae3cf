"""SMS through the real Twilio client against the Twilio stand-in, via real workers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from herald.holds.agreements import apply_event
from herald.holds.optouts import OptOuts
from herald.holds.suppression import SuppressionStore
from tests.harness import Herald
from tests.providers.conftest import Providers
from tests.providers.helpers import fresh_phone, sms

pytestmark = pytest.mark.integration


def _send(system: Herald, phone: str) -> str:
    reminder = sms(phone)
    assert system.producer().enqueue(reminder).status == "accepted"
    return f"{reminder['id']}:sms"


def test_sent_through_twilio_with_a_status_callback(system: Herald, providers: Providers) -> None:
    phone = fresh_phone()
    key = _send(system, phone)
    state = system.wait_outcome(key)
    assert state["outcome"] == "sent"
    assert state["provider"] == "twilio"
    (message,) = providers.twilio.accepted_to(phone)
    assert state["provider_ref"] == message["sid"]
    assert message["from"] == "+15005550006"
    assert "¥1,234.50" in message["body"]
    assert message["status_callback"] == f"{system.api_url}/v1/providers/twilio/status"


@pytest.mark.parametrize(("phone", "code"), [("+15005550001", "21211"), ("+15005550009", "21614")])
def test_permanent_errors_fail_with_one_attempt(
    system: Herald, providers: Providers, phone: str, code: str
) -> None:
    key = _send(system, phone)
    state = system.wait_outcome(key)
    assert state["outcome"] == "failed"
    assert state["reason"].startswith(code)
    assert "+15005****" in state["reason"] or phone not in state["reason"]  # masked
    assert providers.twilio.requests == 1
    assert providers.twilio.accepted == []


def test_429_and_503_are_retried_then_sent_once(system: Herald, providers: Providers) -> None:
    providers.twilio.fail_next(1, 429, retry_after=0)
    providers.twilio.fail_next(1, 503)
    phone = fresh_phone()
    state = system.wait_outcome(_send(system, phone))
    assert state["outcome"] == "sent"
    assert providers.twilio.requests == 3
    assert len(providers.twilio.accepted_to(phone)) == 1


def test_500_is_in_doubt_and_never_resent(system: Herald, providers: Providers) -> None:
    providers.twilio.fail_next(1, 500)
    key = _send(system, fresh_phone())
    state = system.wait_outcome(key)
    assert state["outcome"] == "in_doubt"
    system.shift_clock(3 * 3600)
    marker = _send(system, fresh_phone())  # a later message proves the worker moved on
    system.wait_outcome(marker)
    assert providers.twilio.requests == 2
    assert system.delivery(key)["outcome"] == "in_doubt"


def test_timeout_after_sending_is_in_doubt(system: Herald, providers: Providers) -> None:
    providers.twilio.hang_next(1, 4.0)
    phone = fresh_phone()
    state = system.wait_outcome(_send(system, phone))
    assert state["outcome"] == "in_doubt"
    assert "timeout" in state["reason"]
    assert len(providers.twilio.accepted_to(phone)) == 1  # Twilio has it: never send again
    assert providers.twilio.requests == 1


def test_outage_longer_than_quick_retries_is_rescheduled_and_sent_once(
    system: Herald, providers: Providers
) -> None:
    providers.twilio.set_outage(503)
    phone = fresh_phone()
    key = _send(system, phone)
    waiting = system.wait_state(key, "retrying")
    assert waiting["retries"] == "1"
    assert providers.twilio.requests == 3  # the quick tier's attempts
    assert system.redis().zscore("herald:scheduled", key) is not None

    providers.twilio.set_outage(None)
    system.shift_clock(2 * 3600)
    assert system.wait_outcome(key)["outcome"] == "sent"
    assert len(providers.twilio.accepted_to(phone)) == 1


def test_retries_exhausted_go_to_the_dead_letters_and_replay_sends(
    system: Herald, providers: Providers
) -> None:
    providers.twilio.set_outage(503)
    phone = fresh_phone()
    key = _send(system, phone)
    system.wait_state(key, "retrying")
    system.shift_clock(2 * 3600)  # past the retry deadline (HERALD_RETRY_DEADLINE=3600)
    state = system.wait_outcome(key)
    assert state["outcome"] == "dead"
    assert "retries exhausted" in state["reason"]

    listed = system.cli("deadletter", "list")
    assert listed.returncode == 0, listed.stderr
    assert key in listed.stdout

    providers.twilio.set_outage(None)
    replayed = system.cli("deadletter", "replay", key)
    assert replayed.returncode == 0, replayed.stderr
    assert system.wait_outcome(key)["outcome"] == "sent"
    assert len(providers.twilio.accepted_to(phone)) == 1
    assert key not in system.cli("deadletter", "list").stdout
    assert system.cli("deadletter", "replay", "nope:sms").returncode == 1


def test_stop_reported_by_twilio_opts_the_number_out(system: Herald, providers: Providers) -> None:
    phone = "+15005550004"  # Twilio answers 21610: the recipient replied STOP
    first = system.wait_outcome(_send(system, phone))
    assert first["outcome"] == "opted_out"
    assert first["reason"].startswith("21610")
    requests = providers.twilio.requests

    later = system.wait_outcome(_send(system, phone))
    assert later["outcome"] == "opted_out"
    assert providers.twilio.requests == requests  # no provider call at all
    listed = system.cli("optout", "list", "sms", "--unmasked")
    assert phone in listed.stdout
    assert system.cli("optout", "remove", "sms", phone).returncode == 0


@pytest.mark.parametrize(
    ("keyword", "start"),
    [
        ("STOP", "START"),
        ("退订", "START"),
        ("td", "START"),
        # full width, or wrapped in direction marks or spaces and punctuation: still keywords
        ("ＳＴＯＰ", "ＳＴＡＲＴ"),
        ("\u200f退订\u200f", "START"),
        (" stop. ", "START"),
        ("\u202bTD\u202c", "ＳＴＡＲＴ"),
    ],
)
def test_inbound_keywords_opt_out_and_start_opts_back_in(
    system: Herald, providers: Providers, keyword: str, start: str
) -> None:
    phone = fresh_phone()
    inbound = f"{system.api_url}/v1/providers/twilio/inbound"
    assert providers.twilio.send_inbound(inbound, phone, keyword) == 200
    assert system.wait_outcome(_send(system, phone))["outcome"] == "opted_out"
    assert providers.twilio.accepted_to(phone) == []

    assert providers.twilio.send_inbound(inbound, phone, start) == 200
    assert system.wait_outcome(_send(system, phone))["outcome"] == "sent"
    assert len(providers.twilio.accepted_to(phone)) == 1


def test_start_lifts_only_an_opt_out_a_keyword_made_never_an_operators_or_a_links(
    system: Herald, providers: Providers
) -> None:
    inbound = f"{system.api_url}/v1/providers/twilio/inbound"
    by_operator, by_both, by_link = fresh_phone(), fresh_phone(), fresh_phone()
    assert system.cli("optout", "add", "sms", by_operator).returncode == 0
    assert providers.twilio.send_inbound(inbound, by_both, "STOP") == 200
    assert system.cli("optout", "add", "sms", by_both).returncode == 0
    OptOuts(system.redis()).add("sms", by_link, source="unsubscribe-link", by=by_link)
    for phone in (by_operator, by_both, by_link):
        assert providers.twilio.send_inbound(inbound, phone, "START") == 200
        assert system.wait_outcome(_send(system, phone))["outcome"] == "opted_out"
        assert providers.twilio.accepted_to(phone) == []
    assert "only an operator may lift it" in system.stack.log("api")

    assert system.cli("optout", "remove", "sms", by_operator).returncode == 0  # an operator may
    assert system.wait_outcome(_send(system, by_operator))["outcome"] == "sent"


def test_status_callbacks_record_receipts_and_forgeries_are_refused(
    system: Herald, providers: Providers
) -> None:
    phone = fresh_phone()
    key = _send(system, phone)
    system.wait_outcome(key)
    (message,) = providers.twilio.accepted_to(phone)

    assert providers.twilio.send_status_callback(message["sid"], "delivered", tamper=True) == 403
    assert "receipt" not in system.delivery(key)
    assert providers.twilio.send_status_callback(message["sid"], "undelivered", error_code=30003) == 200
    state = system.delivery(key)
    assert state["receipt"] == "undelivered"
    assert state["receipt_code"] == "30003"
    assert state["outcome"] == "sent"  # a receipt is not a second outcome

    forged = urllib.request.Request(
        f"{system.api_url}/v1/providers/twilio/status",
        data=f"MessageSid={message['sid']}&MessageStatus=delivered".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "bm9wZQ=="},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["detail"] == "invalid X-Twilio-Signature"
    assert system.delivery(key)["receipt"] == "undelivered"


def test_one_batch_of_mixed_fates_keeps_each_outcome(system: Herald, providers: Providers) -> None:
    """Permanent, transient, ambiguous, held and plain deliveries travel in one batch."""
    twilio = providers.twilio
    fine, transient, ambiguous, held = (fresh_phone() for _ in range(4))
    twilio.fail_to(transient, 1, 503)
    twilio.hang_to(ambiguous, 4.0)
    reminders = {
        "fine": sms(fine),
        "permanent": sms("+15005550001"),
        "transient": sms(transient),
        "ambiguous": sms(ambiguous),
        "held": sms(held, account_id=f"acct-mixed-{held[-8:]}"),
    }
    apply_event(SuppressionStore(system.redis()), f"acct-mixed-{held[-8:]}", f"AGR-M{held[-8:]}", "signed")
    system.producer().enqueue_many(list(reminders.values()))
    outcome = {name: system.wait_outcome(f"{r['id']}:sms") for name, r in reminders.items()}
    assert {name: o["outcome"] for name, o in outcome.items()} == {
        "fine": "sent",
        "permanent": "failed",
        "transient": "sent",
        "ambiguous": "in_doubt",
        "held": "suppressed",
    }
    assert outcome["transient"]["attempts"] == "2"  # claimed again before its quick retry
    assert [len(twilio.accepted_to(p)) for p in (fine, transient, ambiguous, held)] == [1, 1, 1, 0]
