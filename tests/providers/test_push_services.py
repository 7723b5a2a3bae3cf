"""Push with both services configured (``HERALD_PUSH_PROVIDER=fcm,apns``), through the running
system: each token goes to its own service, and a device APNs reports gone becomes an opt-out."""

from __future__ import annotations

import secrets

import pytest

from herald.holds.optouts import OptOuts
from tests.harness import Herald
from tests.providers.conftest import Providers
from tests.providers.helpers import fresh_token, push

pytestmark = pytest.mark.integration


def _apns_token(prefix: str = "") -> str:
    return "apns:" + (prefix + secrets.token_hex(32))[:64]


def _send(system: Herald, *tokens: str) -> str:
    reminder = push(*tokens)
    assert system.producer().enqueue(reminder).status == "accepted"
    return f"{reminder['id']}:push"


def test_an_apns_token_goes_to_apns_and_an_fcm_token_to_fcm_in_one_delivery(
    system: Herald, providers: Providers
) -> None:
    iphone, android = _apns_token(), fresh_token()

    state = system.wait_outcome(_send(system, iphone, android))

    assert state["outcome"] == "sent"
    assert sorted(state["provider"].split("+")) == ["apns", "fcm"]
    (notification,) = providers.apns.accepted_for(iphone)
    assert notification["title"]
    assert "CN¥1,234.50" in notification["body"]
    assert len(providers.fcm.accepted_for(android)) == 1
    assert len(providers.fcm.accepted_for(iphone)) == 0


def test_a_device_apns_reports_unregistered_is_opted_out_and_never_sent_to_again(
    system: Herald, providers: Providers
) -> None:
    gone = _apns_token("deadbeef")  # the stand-in answers 410 Unregistered for these

    state = system.wait_outcome(_send(system, gone))

    assert state["outcome"] == "opted_out"
    assert "Unregistered" in state["reason"]
    assert OptOuts(system.redis()).contains("push", gone)
    requests = providers.apns.requests
    again = system.wait_outcome(_send(system, gone, fresh_token()))
    assert again["outcome"] == "sent"
    assert again["provider"] == "fcm"
    assert providers.apns.requests == requests  # the opted-out device was not asked again
