"""Shared HTTP policy for providers spoken to over HTTP (aiohttp).

One ``ClientSession`` per process with a large connection pool; a connect timeout and a read
timeout that are always enforced; and one mapping from transport failures and HTTP statuses to
the error taxonomy: a failure before the request left is safe to retry, one after it is
ambiguous.
"""

from __future__ import annotations

import aiohttp

from herald.channels.base import AmbiguousError, ProviderError, RetryableError
from herald.config import Settings


def make_session(settings: Settings, limit: int | None = None) -> aiohttp.ClientSession:
    """A pooled session with herald's timeouts (connect, and read after the request was sent)."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.provider_timeout
    )
    connector = aiohttp.TCPConnector(limit=limit or settings.in_flight, keepalive_timeout=15)
    return aiohttp.ClientSession(timeout=timeout, connector=connector)


def transport_error(exc: BaseException, what: str) -> ProviderError:
    """The taxonomy class of a transport failure raised by aiohttp."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return RetryableError(f"{what}: could not connect ({type(exc).__name__})", code="connect")
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return AmbiguousError(f"{what}: no answer in time after sending", code="timeout")
    return AmbiguousError(f"{what}: connection lost after sending ({type(exc).__name__})", code="io")


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds (the HTTP-date form is not used by these providers)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def status_error(
    status: int, code: str | int | None, message: str, after: float | None
) -> ProviderError | None:
    """The class every HTTP provider shares for these statuses; None when the provider decides."""
    if status in (429, 503):
        return RetryableError(message, code=code, retry_after=after)
    if status in (500, 502, 504):
        return AmbiguousError(message, code=code)
    if status in (401, 403):
        return RetryableError(f"credentials refused ({message}); check the configuration", code=code)
    return None
