"""Masking personal data before it reaches a log line: ``+86138****8000``, ``l****@example.cn``."""

from __future__ import annotations

import re

_PHONE = re.compile(r"\+\d{8,15}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def mask_phone(phone: str | None) -> str:
    """Keep the country code and carrier prefix and the last four digits."""
    if not phone:
        return ""
    if len(phone) <= 8:
        return phone[:2] + "*" * (len(phone) - 2)
    return phone[:6] + "****" + phone[-4:]


def mask_email(email: str | None) -> str:
    """Keep the first character of the local part and the domain."""
    if not email:
        return ""
    local, _, domain = email.partition("@")
    return (local[:1] + "****@" + domain) if domain else "****"


def mask_token(token: str | None) -> str:
    """Keep the first and last four characters of a push token."""
    if not token:
        return ""
    return token[:4] + "…" + token[-4:] if len(token) > 12 else "****"


def mask_address(channel: str, address: str | list[str] | None) -> str:
    """The masked form of a channel's address, for logs."""
    if channel == "sms":
        return mask_phone(address if isinstance(address, str) else None)
    if channel == "email":
        return mask_email(address if isinstance(address, str) else None)
    tokens = [address] if isinstance(address, str) else (address or [])
    return ",".join(mask_token(t) for t in tokens)


def scrub(text: str) -> str:
    """``text`` with every phone number and email address in it masked (for reasons and logs)."""
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
