"""The retry policy, in two tiers, for failures the provider cannot have accepted.

1. Quick: a few attempts inside the same task (tenacity), bounded in count and total time,
   with exponential backoff and jitter, honouring Retry-After when it fits in the budget.
2. Slow: the delivery goes back to the scheduler with growing delays (never a Celery countdown)
   until ``HERALD_RETRY_DEADLINE`` seconds after its first failure; then it is ``dead``.
"""

from __future__ import annotations

import logging
import random

import redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_before_delay,
    wait_exponential,
)

from herald.channels.base import Deferred, ProviderDown, RetryableError
from herald.config import Settings

log = logging.getLogger("herald.delivery.retry")

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""Redis unreachable, a connection reset, or Redis still loading its data after a restart."""
REDIS_UNAVAILABLE = (*REDIS_DOWN, redis.exceptions.OutOfMemoryError)
"""Redis down, or full (refusing writes at maxmemory): either way nothing can be claimed or
recorded until it is back, and both are waited out the same way."""


def _retry_after(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryableError) and exc.retry_after:
        return float(exc.retry_after)
    return 0.0


def _quick(exc: BaseException) -> bool:
    """Whether the quick tier tries again: a retryable error, but not a limit on the recipient
    (it lasts minutes to a day) nor a provider that is down (its delivery goes elsewhere)."""
    return isinstance(exc, RetryableError) and not isinstance(exc, Deferred | ProviderDown)


def quick_retrying(settings: Settings) -> AsyncRetrying:
    """Tenacity's retrier for the quick tier (re-raises the last error when it gives up)."""
    budget = settings.quick_max_seconds

    def wait(state: RetryCallState) -> float:
        backoff: float = min(4.0, 0.25 * 2 ** (state.attempt_number - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        return max(backoff, _retry_after(state))

    return AsyncRetrying(
        retry=retry_if_exception(_quick),
        # stop_before_delay sees the coming wait (backoff or Retry-After): never past the budget
        stop=stop_after_attempt(settings.quick_attempts) | stop_before_delay(budget),
        wait=wait,
        reraise=True,
    )


def next_delay(settings: Settings, retries: int, retry_after: float | None) -> float:
    """Seconds until the next slow-tier attempt: exponential with jitter, never under Retry-After."""
    ceiling: float = min(settings.retry_max_delay, settings.retry_base * 2.0**retries)
    return max(ceiling * random.uniform(0.5, 1.0), retry_after or 0.0)  # noqa: S311


def redis_patience(settings: Settings, what: str) -> AsyncRetrying:
    """Tenacity's retrier for Redis outages: waits up to ``HERALD_REDIS_PATIENCE`` seconds
    (:attr:`Settings.redis_wait`).

    Used where giving up would lose something worth keeping: a provider's answer not yet
    recorded, or a batch whose checks could not run (nothing was sent; it is tried again).
    """

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "redis unavailable while %s (%s); trying again (attempt %d)", what, exc, state.attempt_number
        )

    return AsyncRetrying(
        retry=retry_if_exception_type(REDIS_UNAVAILABLE),
        stop=stop_after_delay(settings.redis_wait),
        wait=wait_exponential(multiplier=0.1, max=5.0),
        before_sleep=note,
        reraise=True,
    )
