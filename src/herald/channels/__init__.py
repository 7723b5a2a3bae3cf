"""Providers, one module per provider, chosen per channel by configuration."""

from __future__ import annotations

from importlib import import_module

from herald.channels.base import Provider
from herald.config import Settings
from herald.models import Channel

# provider name -> "module:class"; a new provider is one module and one line here.
PROVIDERS: dict[str, str] = {
    "outbox": "herald.channels.outbox:OutboxProvider",
    "twilio": "herald.channels.twilio_sms:TwilioSMSProvider",
    "smtp": "herald.channels.smtp_email:SMTPEmailProvider",
    "fcm": "herald.channels.fcm_push:FCMPushProvider",
}


def provider_name(channel: Channel, settings: Settings) -> str:
    """The provider configured for ``channel`` (HERALD_<CHANNEL>_PROVIDER)."""
    return {
        "sms": settings.sms_provider,
        "email": settings.email_provider,
        "push": settings.push_provider,
    }[channel]


def make_provider(channel: Channel, settings: Settings) -> Provider:
    """Build the configured provider for ``channel``."""
    name = provider_name(channel, settings)
    try:
        module_name, _, class_name = PROVIDERS[name].partition(":")
    except KeyError:
        raise ValueError(f"no provider named {name!r} for {channel} in this build") from None
    cls: type[Provider] = getattr(import_module(module_name), class_name)
    return cls(channel, settings)
