"""Push to a recipient's devices, each token through its own service: APNs or FCM.

A recipient may have an iPhone and an Android phone: its ``to.push_tokens`` then holds an APNs
token (stored with the ``apns:`` prefix) and an FCM token (no prefix, or ``fcm:``).
`PushByToken` is the push provider when ``HERALD_PUSH_PROVIDER`` names services: it splits a
delivery's tokens by service, sends each part through that service's provider at once, and
merges the answers by the rule every push provider follows for several tokens
(``herald.channels.base.merge_results``), so that the pipeline sees one answer per delivery whatever the mix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from herald.channels.base import (
    AmbiguousError,
    Message,
    PermanentError,
    Provider,
    ProviderError,
    RecipientOptedOut,
    SendResult,
    merge_results,
)
from herald.config import Settings
from herald.models import APNS_PREFIX, FCM_PREFIX, Channel

log = logging.getLogger(__name__)


def service_of(token: str) -> str:
    """The service a stored push token belongs to: ``"apns"`` for ``apns:`` tokens, else ``"fcm"``."""
    return "apns" if token.startswith(APNS_PREFIX) else "fcm"


def _restore(addresses: Sequence[str], stored: dict[str, list[str]]) -> tuple[str, ...]:
    """Addresses a sub-provider reported, in the form herald stored them."""
    return tuple(original for address in addresses for original in stored.get(address, [address]))


class PushByToken(Provider):
    """The push provider that routes each token to its service's provider (see the module)."""

    name = "push"

    def __init__(self, channel: Channel, settings: Settings, providers: dict[str, Provider]) -> None:
        super().__init__(channel, settings)
        self.providers = dict(providers)

    async def start(self) -> None:
        """Start every service's provider."""
        for provider in self.providers.values():
            await provider.start()

    async def close(self) -> None:
        """Close every service's provider, each even if another fails to close."""
        results = await asyncio.gather(
            *(provider.close() for provider in self.providers.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def capacity(self) -> int | None:
        """The smallest capacity of the services' providers (None if none has a limit of its own)."""
        limits = [c for c in (p.capacity() for p in self.providers.values()) if c is not None]
        return min(limits, default=None)

    async def _send_part(self, service: str, message: Message, tokens: list[str]) -> SendResult:
        provider = self.providers.get(service)
        if provider is None:
            raise PermanentError(
                f"no provider for {service} tokens: HERALD_PUSH_PROVIDER={self.settings.push_provider}",
                code="no_provider",
            )
        stored: dict[str, list[str]] = {}
        for token in tokens:  # FCM is given its tokens without the optional fcm: prefix
            sent_as = token.removeprefix(FCM_PREFIX) if service == "fcm" else token
            stored.setdefault(sent_as, []).append(token)
        try:
            result = await provider.send(dataclasses.replace(message, address=list(stored)))
        except RecipientOptedOut as exc:  # naming no address means all of them, as the pipeline reads it
            exc.drop_addresses = _restore(exc.drop_addresses, stored) or tuple(tokens)
            raise
        except ProviderError as exc:
            exc.drop_addresses = _restore(exc.drop_addresses, stored)
            raise
        return dataclasses.replace(result, drop_addresses=_restore(result.drop_addresses, stored))

    async def send(self, message: Message) -> SendResult:
        """Send each service its tokens at once; one merged answer (see ``merge_results``)."""
        tokens = message.address if isinstance(message.address, list) else [message.address]
        groups: dict[str, list[str]] = {}
        for token in tokens:
            groups.setdefault(service_of(token), []).append(token)
        answers = await asyncio.gather(
            *(self._send_part(service, message, group) for service, group in groups.items()),
            return_exceptions=True,
        )
        parts: list[tuple[str, SendResult | ProviderError]] = []
        details: dict[str, Any] = {}
        for service, answer in zip(groups, answers, strict=True):
            if isinstance(answer, SendResult):
                parts.append((service, answer))
                details[service] = answer.detail
            elif isinstance(answer, ProviderError):
                parts.append((service, answer))
            elif isinstance(answer, Exception):  # unknown: that service may have accepted it
                log.error("push provider %s raised for %s", service, message.key, exc_info=answer)
                unknown = AmbiguousError(f"{service}: unexpected error: {type(answer).__name__}")
                parts.append((service, unknown))
            else:
                raise answer  # cancelled: not ours to swallow
        result = merge_results(parts)
        via = "+".join(service for service, part in parts if isinstance(part, SendResult))
        return dataclasses.replace(result, detail={**result.detail, "services": details}, via=via)
