"""Helpers for the operator page's tests: a real in-doubt delivery, signing in."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery import Celery

from herald.config import Settings
from herald.scheduler import Scheduler
from tests.harness import Unpublished, claim_only, make_reminder


def make_in_doubt(settings: Settings, account: str) -> str:
    """A delivery really in doubt: claimed, then its lease ended with no result. Its key."""
    reminder = make_reminder(channels=["sms"], account_id=account)
    Unpublished(settings).enqueue(reminder)
    key = f"{reminder['id']}:sms"

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps an event loop in this thread
        claimed = pool.submit(claim_only, settings, key).result()
    assert claimed == "claimed", f"the claim of {key} answered {claimed!r} (a hold on {account}?)"
    client = redis.Redis.from_url(settings.redis_url)
    before = os.environ.get("HERALD_CLOCK_OFFSET")
    os.environ["HERALD_CLOCK_OFFSET"] = str(settings.lease_seconds + 60)  # the lease has ended
    try:
        settled = Scheduler(settings, Celery("unused"), client).expire_leases()
    finally:
        if before is None:
            os.environ.pop("HERALD_CLOCK_OFFSET", None)
        else:
            os.environ["HERALD_CLOCK_OFFSET"] = before
    assert key in settled
    assert client.hget(f"herald:d:{key}", "outcome") == b"in_doubt"
    return key


def sign_in(page: Any, key: str) -> None:
    """Sign in through the form."""
    page.goto("/operator")
    page.fill("#signin input[name=key]", key)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#who")
