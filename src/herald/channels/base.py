"""The provider interface every channel module implements, and its error taxonomy.

A provider turns one rendered message into one provider call. It raises one of the errors
below, and the pipeline decides the outcome from the class alone:

| error | meaning | outcome |
| --- | --- | --- |
| ``PermanentError`` | the provider refused this message for good | ``failed`` |
| ``RecipientOptedOut`` | the recipient opted out at the provider (STOP, unregistered token) | ``opted_out`` |
| ``RetryableError`` | the provider cannot have accepted it (no connection, 429, 503) | retried |
| ``AmbiguousError`` | it may have been accepted (timeout after sending, 500/502/504) | ``in_doubt`` |
| ``Deferred`` | a limit on this recipient (a per-number cap), not the provider's failure | retried later |
| ``ProviderDown`` | nothing goes through this provider until someone acts (credit, keys) | sent elsewhere |

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
- Aliyun (dysmsapi ``SendSms``; business errors are a ``Code`` in an HTTP 200 answer, gateway
  errors a ``Code`` with a 4xx/5xx). Permanent: ``isv.MOBILE_NUMBER_ILLEGAL``, template, parameter
  and signature-name codes, other ``isv.*``. Deferred: ``isv.BUSINESS_LIMIT_CONTROL`` (minute, hour
  or day cap on one number). Provider down: ``isv.AMOUNT_NOT_ENOUGH``, ``isv.OUT_OF_SERVICE``,
  account and RAM codes, the account's own day/month caps, ``InvalidAccessKeyId.*``,
  ``SignatureDoesNotMatch``, ``Forbidden.*``, 401 / 403. Safe to retry: connection refused, connect
  timeout, ``Throttling*``, ``*FLOW_CONTROL``, ``ServiceUnavailable``, ``SignatureNonceUsed``, 429,
  503. Ambiguous: ``isp.*`` (``isp.SYSTEM_ERROR``), ``InternalError``, 500 / 502 / 504, read timeout
  or connection lost after sending (``SendSms`` has no idempotency key).
- APNs. Permanent: 400 BadDeviceToken and DeviceTokenNotForTopic (never opt-outs: APNs answers
  them for every token when the environment or topic is configured wrong), other 4xx (BadTopic,
  MissingTopic, PayloadTooLarge, BadCollapseId, 403 Forbidden...). Opted out: 410 Unregistered
  (the token is dropped). Safe to retry: connection refused, connect timeout, 429 TooManyRequests,
  503 ServiceUnavailable / Shutdown (Retry-After), 403 ExpiredProviderToken / InvalidProviderToken
  once a new provider token was refused too. Ambiguous: read timeout or connection lost after
  sending, 500 InternalServerError, 502, 504.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
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
    expires_at: float | None = None
    """When the reminder stops being worth delivering (epoch seconds): a provider that keeps a
    message for a device that is offline (APNs) keeps it until then, never longer."""

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
    via: str = ""
    """Which service accepted it, when the provider is several (``fcm+apns``); else empty."""


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


class Deferred(RetryableError):
    """Not accepted because of a limit on this one recipient (a carrier's cap on messages to a
    number per minute, hour or day): try again after ``retry_after``. Not a failure of the
    provider (it never counts against its breaker) and never a reason to try another provider
    (the carrier's limit is the same whoever sends)."""


class ProviderDown(RetryableError):
    """Not accepted, and nothing sent through this provider will be until someone acts on it
    (out of credit, service suspended, credentials refused): its breaker opens at once and the
    delivery goes to the next provider of its route."""


class AmbiguousError(ProviderError):
    """The provider may have accepted it; sending again could deliver it twice."""


class Provider(ABC):
    """One channel's provider. Subclasses set ``name`` and ``channel`` and implement ``send``.

    ``start`` runs once in the worker process, inside its event loop, after fork: open
    connection pools there. ``send`` is called concurrently for many messages.
    """

    name: ClassVar[str]
    approved_only: ClassVar[bool] = False
    """Whether the provider sends only pre-approved templates (a code and its parameters, from
    ``[sms.<name>]`` in the kind's ``kind.toml``) rather than herald's rendered text."""
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


def merge_results(parts: Sequence[tuple[str, SendResult | ProviderError]]) -> SendResult:
    """One answer for a delivery sent in several parts (one per token, or one per service).

    Sent if any part was accepted: the first accepted part's reference, the detail of what
    was sent where and what failed, and every address a part reported gone. If none was
    accepted, the most cautious error is raised (ambiguous, then retryable, then permanent,
    since a part that may have been accepted must not be resent blindly), carrying every
    address reported gone and the longest Retry-After; if every part was refused for an
    opt-out, the first of those is raised. Each ``label`` names its part in the detail.
    """
    if not parts:
        raise PermanentError("no push token to send to", code="no_tokens")
    gone = tuple(dict.fromkeys(address for _, part in parts for address in part.drop_addresses))
    accepted = [(label, part) for label, part in parts if isinstance(part, SendResult)]
    errors = [(label, part) for label, part in parts if isinstance(part, ProviderError)]
    if accepted:
        detail: dict[str, Any] = {
            "sent": {label: result.provider_ref for label, result in accepted},
            "failed": {label: error.reason() for label, error in errors},
        }
        return SendResult(provider_ref=accepted[0][1].provider_ref, detail=detail, drop_addresses=gone)
    for cls in (AmbiguousError, RetryableError, PermanentError):
        found = [e for _, e in errors if isinstance(e, cls) and not isinstance(e, RecipientOptedOut)]
        if found:
            error = found[0]
            error.drop_addresses = gone
            if isinstance(error, RetryableError):
                waits = [e.retry_after or 0.0 for e in found if isinstance(e, RetryableError)]
                error.retry_after = max(waits, default=0.0) or None
            raise error
    opted_out = next(e for _, e in errors if isinstance(e, RecipientOptedOut))
    opted_out.drop_addresses = gone
    raise opted_out


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
