"""Helpers for the operator page's tests: a real in-doubt delivery, signing in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from herald.config import Settings
from tests import harness


def make_in_doubt(settings: Settings, account: str) -> str:
    """A delivery really in doubt on ``account`` (:func:`tests.harness.make_in_doubt`). Its key.

    Run in a thread of its own: Playwright's sync API keeps an event loop in the test's thread,
    and the claim runs one of its own.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(harness.make_in_doubt, settings, account=account).result()


def sign_in(page: Any, key: str) -> None:
    """Sign in through the form."""
    page.goto("/operator")
    page.fill("#signin input[name=key]", key)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#who")
