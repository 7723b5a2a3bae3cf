"""A worker that dies between the claim and the record leaves the delivery in doubt; an
operator lists and settles it. Nothing is resent by itself."""

from __future__ import annotations

import json

import pytest

from tests.harness import Herald, Unpublished, claim_only, make_reminder

pytestmark = pytest.mark.integration


def test_an_ended_lease_is_in_doubt_listed_and_resolved_by_an_operator(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    settings = system.settings()
    Unpublished(settings).enqueue(reminder)
    key = f"{reminder['id']}:sms"

    assert claim_only(settings, key) == "claimed"  # a worker that then died before its send
    assert system.delivery(key)["state"] == "sending"

    system.shift_clock(settings.lease_seconds + 60)  # the lease ends with no result recorded
    state = system.wait_outcome(key)
    assert state["outcome"] == "in_doubt"
    assert "lease ended" in state["reason"]
    assert system.outbox_lines("sms", reminder["id"]) == []

    listed = system.cli("status", "--in-doubt", "--json")
    assert listed.returncode == 0, listed.stderr
    assert key in [row["key"] for row in json.loads(listed.stdout)]

    resolved = system.cli(
        "resolve", key, "--not-sent", "--reason", "not in the provider's log", "--by", "ops-li"
    )
    assert resolved.returncode == 0, resolved.stderr
    state = system.delivery(key)
    assert state["outcome"] == "failed"
    assert "ops-li" in state["reason"]
    assert key not in system.cli("status", "--in-doubt").stdout
    assert system.cli("resolve", key, "--sent").returncode == 1
