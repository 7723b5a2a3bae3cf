"""The provider interface every channel module implements, and its error taxonomy.

A provider turns one rendered message into one provider call. It raises one of the errors
below, and the pipeline decides the outcome from the class alone:

| error | meaning | outcome |
| --- | --- | --- |
| ``PermanentError`` | the provider refused this message for good | ``failed`` |
| ``RecipientOptedOut`` | the recipient opted out at the provider (STOP, unregistered token) | ``opted_out`` |
| ``RetryableError`` | the provider cannot have accepted it (no connection, 429, 503) | retried |
| ``AmbiguousError`` | it may have been accepted (timeout after sending, 500/502/504) | ``in_doubt`` |

Any other exception escaping ``send`` is treated as ambiguous: herald never guesses that an
unknown failure left nothing behind at the provider.

Provider by provider:

- Twilio. Permanent: 21211 invalid number, 21614 not a mobile, 21612, other 4xx. Opted out:
  21610 (STOP). Safe to retry: connection refused, connect timeout, 429 / 20429 (Retry-After),
  503, 21611 / 30001 queue full, 401 / 403 credentials. Ambiguous: read timeout after sending,
  500 / 502 / 504, connection lost after sending.
- SMTP. Permanent: 5xx at MAIL, RCPT or DATA (a refused recipient included). Safe to retry:
  connection, TLS or AUTH failure, 4xx. Ambiguous: connection lost or timeout during DATA.
- FCM. Permanent: INVALID_ARGUMENT, SENDER_ID_MISMATCH. Opted out: UNREGISTERED (the token is
  dropped). Safe to retry: connection refused, 429 QUOTA_EXCEEDED, 503 UNAVAILABLE
  (Retry-After), 401. Ambiguous: read timeout after sending, 500 INTERNAL, 502, 504.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from herald import instruments as metrics
from herald.config import Settings
from herald.display.masking import mask_address, scrub
from herald.models import Channel
from herald.rendering.renderer import Rendered


@dataclass(frozen=True)
class Message:
    """One delivery, rendered and ready for its provider."""

    key: str
    reminder_id: str
    account_id: str
    kind: str
    category: str
    channel: Channel
    address: str | list[str]
    rendered: Rendered

    def masked_address(self) -> str:
        """The address with personal data masked, for logs."""
        return mask_address(self.channel, self.address)


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted the message."""

    provider_ref: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    drop_addresses: tuple[str, ...] = ()
    """Addresses the provider says are gone for good (e.g. unregistered push tokens)."""


class ProviderError(Exception):
    """Base of the taxonomy: ``code`` and ``message`` as the provider gave them."""

    def __init__(
        self, message: str, *, code: str | int | None = None, drop_addresses: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.drop_addresses = drop_addresses

    def reason(self) -> str:
        """A one-line reason for the delivery record, with personal data masked."""
        text = f"{self.code}: {self.message}" if self.code is not None else self.message
        return scrub(" ".join(text.split()))


class PermanentError(ProviderError):
    """Refused for good; sending again would be refused again."""


class RecipientOptedOut(PermanentError):
    """The recipient cannot be reached here any more (replied STOP, token unregistered)."""


class RetryableError(ProviderError):
    """Not accepted, and safe to send again, after ``retry_after`` seconds if given."""

    def __init__(
        self,
        message: str,
        *,
        code: str | int | None = None,
        retry_after: float | None = None,
        drop_addresses: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, code=code, drop_addresses=drop_addresses)
        self.retry_after = retry_after


class AmbiguousError(ProviderError):
    """The provider may have accepted it; sending again could deliver it twice."""


class Provider(ABC):
    """One channel's provider. Subclasses set ``name`` and ``channel`` and implement ``send``.

    ``start`` runs once in the worker process, inside its event loop, after fork: open
    connection pools there. ``send`` is called concurrently for many messages.
    """

    name: ClassVar[str]
    receipts: ClassVar[bool] = False
    """Whether the provider reports on a sent message later (a delivery receipt naming its
    message id): only then does a sent delivery keep a ``herald:ref:`` key pointing back to it."""

    def __init__(self, channel: Channel, settings: Settings) -> None:
        self.channel = channel
        self.settings = settings

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called once per process inside its event loop."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def capacity(self) -> int | None:
        """How many requests this provider can have out at once (its own connection pool), or
        None for as many as ``HERALD_IN_FLIGHT``: the pipeline never claims more deliveries
        than can be sent at once, so no claimed delivery waits for a connection."""
        return None

    @abstractmethod
    async def send(self, message: Message) -> SendResult:
        """Deliver one message or raise a ``ProviderError`` subclass."""

    async def timed_send(self, message: Message) -> SendResult:
        """``send``, timed for ``herald_provider_latency_seconds`` and counted by class of error."""
        started = time.perf_counter()
        try:
            result = await self.send(message)
        except Exception as exc:
            metrics.record_provider_call(self.name, time.perf_counter() - started, error_class(exc))
            raise
        metrics.record_provider_call(self.name, time.perf_counter() - started)
        return result


def error_class(exc: BaseException) -> str:
    """The class of a provider failure, as counted in ``herald_provider_errors_total``."""
    for cls, name in (
        (RecipientOptedOut, "opted_out"),
        (PermanentError, "permanent"),
        (RetryableError, "retryable"),
        (AmbiguousError, "ambiguous"),
    ):
        if isinstance(exc, cls):
            return name
    return "unexpected"
