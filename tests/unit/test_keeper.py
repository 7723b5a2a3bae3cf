"""What a worker process renews: the keeper's book of taken and claimed deliveries."""

from __future__ import annotations

from typing import Any

from herald.delivery.keeper import Keeper


def _keeper() -> Keeper:
    unused: Any = None  # release and take never reach Redis
    return Keeper(unused, unused, holder="host:1:abc", hold=60)


def test_a_recorded_delivery_is_no_longer_renewed() -> None:
    keeper = _keeper()
    keeper.take(["r1:sms", "r2:sms"])
    keeper.claimed("r1:sms", "token-1")

    keeper.release("r1:sms", "token-1")
    keeper.release("r2:sms", "")

    assert keeper.held == {}


def test_a_second_copy_of_a_claimed_delivery_does_not_stop_its_lease_renewal() -> None:
    keeper = _keeper()
    keeper.take(["r1:sms"])
    keeper.claimed("r1:sms", "token-1")
    keeper.take(["r1:sms"])  # the same message delivered twice, taken again by another batch

    keeper.release("r1:sms", "")  # that copy found it already claimed and lets go

    assert keeper.held == {"r1:sms": "token-1"}
    keeper.release("r1:sms")  # without a token: whatever it is
    assert keeper.held == {}
