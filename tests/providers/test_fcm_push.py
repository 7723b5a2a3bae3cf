"""Push through FCM HTTP v1 (aiohttp + google-auth) against the FCM and OAuth stand-ins."""

from __future__ import annotations

import pytest

from tests.harness import Herald
from tests.providers.conftest import Providers
from tests.providers.helpers import fresh_token, push

pytestmark = pytest.mark.integration


def _send(system: Herald, *tokens: str) -> str:
    reminder = push(*tokens)
    assert system.producer().enqueue(reminder).status == "accepted"
    return f"{reminder['id']}:push"


def test_sent_with_a_cached_access_token(system: Herald, providers: Providers) -> None:
    token = fresh_token()
    state = system.wait_outcome(_send(system, token))
    assert state["outcome"] == "sent"
    (message,) = providers.fcm.accepted_for(token)
    assert message["title"]
    assert "CN¥1,234.50" in message["body"]
    assert state["provider_ref"] == message["name"]
    grants = providers.fcm.token_grants
    keys = [_send(system, fresh_token()) for _ in range(6)]
    assert all(system.wait_outcome(key)["outcome"] == "sent" for key in keys)
    assert providers.fcm.token_grants - grants <= 2  # at most one per worker process, not per message


def test_unregistered_tokens_are_dropped_and_never_used_again(system: Herald, providers: Providers) -> None:
    gone, alive = fresh_token("unregistered"), fresh_token()
    mixed = system.wait_outcome(_send(system, gone, alive))
    assert mixed["outcome"] == "sent"
    assert len(providers.fcm.accepted_for(alive)) == 1
    requests = providers.fcm.requests

    only_gone = system.wait_outcome(_send(system, gone))
    assert only_gone["outcome"] == "opted_out"
    assert providers.fcm.requests == requests  # the token was remembered: no call


def test_invalid_argument_fails(system: Herald, providers: Providers) -> None:
    state = system.wait_outcome(_send(system, fresh_token("invalid")))
    assert state["outcome"] == "failed"
    assert "INVALID_ARGUMENT" in state["reason"]
    assert providers.fcm.requests == 1


def test_unavailable_is_retried_and_internal_is_in_doubt(system: Herald, providers: Providers) -> None:
    providers.fcm.fail_next(1, 503, "UNAVAILABLE", retry_after=0)
    retried = fresh_token()
    assert system.wait_outcome(_send(system, retried))["outcome"] == "sent"
    assert len(providers.fcm.accepted_for(retried)) == 1

    providers.fcm.fail_next(1, 500, "INTERNAL")
    state = system.wait_outcome(_send(system, fresh_token()))
    assert state["outcome"] == "in_doubt"


def test_an_expired_access_token_is_refreshed(system: Herald, providers: Providers) -> None:
    # last in this file: it leaves every worker process with a revoked token to refresh
    providers.fcm.expire_tokens()
    token = fresh_token()
    assert system.wait_outcome(_send(system, token))["outcome"] == "sent"
    assert len(providers.fcm.accepted_for(token)) == 1
