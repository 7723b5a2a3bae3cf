"""Routing by destination and failover between SMS providers, through the whole system: two
worker processes, the scheduler and the API, with Aliyun's and Twilio's stand-ins.

Routes as a lender in mainland China would set them: ``86=aliyun,twilio;*=twilio``. The
breakers run on their defaults (10 calls, half failing, over 30 s; 60 s of cool-down).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from herald.api.aliyun_hooks import REPORTS_PATH
from herald.ops.embedded import free_port
from herald.routing.breaker import BREAKERS, openings
from tests.harness import Herald, running_herald
from tests.providers.conftest import served_env
from tests.providers.helpers import fresh_phone, sms
from tests.standins.aliyun import FakeAliyunSMS
from tests.standins.twilio import FakeTwilio

pytestmark = pytest.mark.integration

SENDER = "+15005550006"
SIGN = "赫拉德信贷"
REPORT_TOKEN = "aliyun-report-token-0123456789"


class Both:
    def __init__(self, aliyun: FakeAliyunSMS, twilio: FakeTwilio) -> None:
        self.aliyun = aliyun
        self.twilio = twilio

    def sent_to(self, number: str) -> tuple[int, int]:
        """Messages each stand-in accepted for ``number``: (Aliyun, Twilio)."""
        return len(self.aliyun.accepted_to(number)), len(self.twilio.accepted_to(number))


@pytest.fixture(scope="module")
def both() -> Iterator[Both]:
    with FakeAliyunSMS(sign_name=SIGN) as aliyun, FakeTwilio() as twilio:
        yield Both(aliyun, twilio)


@pytest.fixture(scope="module")
def routed(both: Both, tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    home = tmp_path_factory.mktemp("herald-routed")
    api_port = free_port()
    env = {
        "HERALD_SMS_PROVIDER": "aliyun,twilio",
        "HERALD_SMS_ROUTES": "86=aliyun,twilio;*=twilio",
        **both.aliyun.herald_env(),
        "HERALD_ALIYUN_REPORT_TOKEN": REPORT_TOKEN,
        **both.twilio.herald_env(SENDER),
        **served_env(api_port),
    }
    with running_herald(home, repo_root, env, api=True) as system:
        yield system


@pytest.fixture
def system(routed: Herald, both: Both) -> Iterator[Herald]:
    both.aliyun.reset()
    both.twilio.reset()
    yield routed
    both.aliyun.reset()
    both.twilio.reset()


def _send(system: Herald, phone: str) -> str:
    reminder = sms(phone)
    assert system.producer().enqueue(reminder).status == "accepted"
    return f"{reminder['id']}:sms"


def test_numbers_go_to_the_provider_their_calling_code_routes_them_to(system: Herald, both: Both) -> None:
    china, us = fresh_phone(), "+14155550142"
    to_china, to_us = _send(system, china), _send(system, us)

    assert system.wait_outcome(to_china)["outcome"] == "sent"
    assert system.wait_outcome(to_us)["outcome"] == "sent"
    assert both.sent_to(china) == (1, 0)
    assert both.sent_to(us) == (0, 1)
    (message,) = both.aliyun.accepted_to(china)
    assert message["template_code"] == "SMS_480210041"  # overdue_notice, zh-CN
    assert message["template_param"]["amount"].startswith("¥")
    assert system.delivery(to_china)["provider"] == "aliyun"
    assert system.delivery(to_china)["provider_ref"] == message["biz_id"]
    status = system.cli("status", to_china.split(":")[0], "--json")
    assert '"provider": "aliyun"' in status.stdout


def test_an_aliyun_delivery_report_becomes_the_receipt_of_its_delivery(system: Herald, both: Both) -> None:
    phone = fresh_phone()
    key = _send(system, phone)
    assert system.wait_outcome(key)["outcome"] == "sent"
    (message,) = both.aliyun.accepted_to(phone)

    url = f"{system.api_url}{REPORTS_PATH}?token={REPORT_TOKEN}"
    assert both.aliyun.push_reports(url, [(message["biz_id"], False, "MOBILE_NOT_ON_SERVICE")]) == 200

    delivery = system.delivery(key)
    assert delivery["outcome"] == "sent"  # a receipt is not a second outcome
    assert delivery["receipt"] == "undelivered"
    assert "MOBILE_NOT_ON_SERVICE" in delivery["receipt_code"]
    wrong = requests.post(f"{system.api_url}{REPORTS_PATH}?token=guess", json=[], timeout=10)
    assert wrong.status_code == 403


def test_a_permanent_refusal_is_never_sent_through_another_provider(system: Herald, both: Both) -> None:
    phone = fresh_phone()
    both.aliyun.block(phone)

    state = system.wait_outcome(_send(system, phone))

    assert state["outcome"] == "failed"
    assert "isv.MOBILE_NUMBER_ILLEGAL" in state["reason"]
    assert state["provider"] == "aliyun"
    assert both.twilio.requests == 0


def test_a_limit_on_the_recipient_waits_it_out_and_tries_no_one_else(system: Herald, both: Both) -> None:
    phone = fresh_phone()
    both.aliyun.limit(phone, "hour")

    key = _send(system, phone)
    state = system.wait_state(key, "scheduled")

    assert "isv.BUSINESS_LIMIT_CONTROL" in state["reason"]
    assert float(state["due"]) - float(state["updated_at"]) == pytest.approx(3600, abs=5)
    assert state.get("retries", "0") == "0"  # a wait, not a failure
    assert both.aliyun.requests == 1  # no quick retry against a cap that lasts an hour
    assert both.twilio.requests == 0


def test_an_ambiguous_answer_stays_in_doubt_and_is_never_resent_elsewhere(system: Herald, both: Both) -> None:
    phone = fresh_phone()
    both.aliyun.hang_next(1, 5.0)  # past the provider timeout: Aliyun has it, herald cannot know

    state = system.wait_outcome(_send(system, phone))

    assert state["outcome"] == "in_doubt"
    assert state["provider"] == "aliyun"
    assert both.sent_to(phone) == (1, 0)


def test_a_delivery_refused_retryably_is_retried_through_the_next_provider_of_its_route(
    system: Herald, both: Both
) -> None:
    phone = fresh_phone()
    both.aliyun.fail_next(3, 503, code="ServiceUnavailable")  # every quick attempt; too few to open a breaker

    key = _send(system, phone)
    waiting = system.wait_state(key, "retrying")
    assert "ServiceUnavailable" in waiting["reason"]
    system.shift_clock(float(waiting["due"]) - time.time() + 1)
    state = system.wait_outcome(key)

    assert state["outcome"] == "sent"
    assert state["provider"] == "twilio"
    assert both.sent_to(phone) == (0, 1)
    assert both.aliyun.requests == 3


def test_a_provider_out_of_credit_is_skipped_at_once_and_its_delivery_goes_to_the_next(
    system: Herald, both: Both
) -> None:
    both.aliyun.out_of_credit()
    phone = fresh_phone()

    state = system.wait_outcome(_send(system, phone))

    assert state["outcome"] == "sent"
    assert state["provider"] == "twilio"
    assert both.sent_to(phone) == (0, 1)
    assert both.aliyun.requests == 1  # found down once; not asked again
    (opening,) = openings(system.redis().hgetall(BREAKERS))
    assert opening.provider == "aliyun"
    assert "AMOUNT_NOT_ENOUGH" in opening.reason
    later = [fresh_phone() for _ in range(3)]
    keys = [_send(system, p) for p in later]
    assert all(system.wait_outcome(k)["outcome"] == "sent" for k in keys)
    assert both.aliyun.requests == 1  # the breaker is shared: every process skips Aliyun
    assert [both.sent_to(p) for p in later] == [(0, 1)] * 3


def test_an_outage_moves_traffic_to_the_next_provider_with_nothing_lost_or_sent_twice(
    system: Herald, both: Both
) -> None:
    # last in this module: it leaves Aliyun's breaker open
    system.shift_clock(300)  # past the cool-down of the breaker the test above opened
    both.aliyun.set_outage(503, code="ServiceUnavailable")
    phones = [fresh_phone() for _ in range(40)]
    keys = [_send(system, p) for p in phones]

    for _ in range(8):  # each round: wait until nothing is in flight, then bring the retries due
        system.wait_idle()
        pending = [s for s in (system.delivery(k) for k in keys) if not s.get("outcome")]
        if not pending:
            break
        system.shift_clock(max(float(s["due"]) for s in pending) - time.time() + 1)
    outcomes = {k: system.delivery(k).get("outcome") for k in keys}

    assert set(outcomes.values()) == {"sent"}  # nothing lost
    assert all(both.sent_to(p) == (0, 1) for p in phones)  # each sent once, by Twilio
    assert both.aliyun.accepted == []
    (opening,) = openings(system.redis().hgetall(BREAKERS))
    assert opening.provider == "aliyun"
    assert "calls failed" in opening.reason
    assert both.aliyun.requests >= 10  # the breaker opened on its own evidence, not at once
    assert all(system.delivery(k)["provider"] == "twilio" for k in keys)
    listing = system.cli("status", keys[0].split(":")[0])
    assert "provider breakers" in listing.stdout
    assert "calls failed" in listing.stdout
