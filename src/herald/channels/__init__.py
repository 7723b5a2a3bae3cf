"""Providers, one module per provider, chosen per channel by configuration."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module

from herald.channels.base import Provider
from herald.config import Settings
from herald.models import Channel

# provider name -> "module:class"; a new provider is one module and one line here.
PROVIDERS: dict[str, str] = {
    "outbox": "herald.channels.outbox:OutboxProvider",
    "twilio": "herald.channels.twilio_sms:TwilioSMSProvider",
    "aliyun": "herald.channels.aliyun_sms:AliyunSMSProvider",
    "smtp": "herald.channels.smtp_email:SMTPEmailProvider",
    "fcm": "herald.channels.fcm_push:FCMPushProvider",
    "apns": "herald.channels.apns_push:APNsPushProvider",
}


def provider_class(name: str) -> type[Provider]:
    """The class of the provider called ``name``."""
    try:
        module_name, _, class_name = PROVIDERS[name].partition(":")
    except KeyError:
        raise ValueError(f"no provider named {name!r} in this build") from None
    cls: type[Provider] = getattr(import_module(module_name), class_name)
    return cls


def approved_only(names: Iterable[str]) -> tuple[str, ...]:
    """Of ``names`` (providers of this build, or ``push``, every push service at once), those
    that send only approved templates (their code and parameters are rendered with a message)."""
    return tuple(n for n in names if n in PROVIDERS and provider_class(n).approved_only)


def make_provider(channel: Channel, settings: Settings, name: str) -> Provider:
    """Build the provider ``name`` for ``channel``; ``push`` is every push service of
    ``HERALD_PUSH_PROVIDER`` at once, each token to its own."""
    if name == "push":
        from herald.channels.push_tokens import PushByToken

        parts = {n: provider_class(n)(channel, settings) for n in settings.providers(channel)}
        return PushByToken(channel, settings, parts)
    return provider_class(name)(channel, settings)
