"""Masking personal data before it reaches a log line: ``+86138****8000``, ``l****@example.cn``."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import Leniency, PhoneNumberFormat, PhoneNumberMatcher

_PHONE = re.compile(r"\+\d{8,15}")
REGIONS = ("CN", "US")
"""Where a number written without its country code is read from: mainland China (herald's
borrowers) first, then the North American plan."""
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


def _mask_numbers(text: str, region: str) -> str:
    """``text`` with the phone numbers ``phonenumbers`` finds in it for ``region`` masked (as
    E.164): ``13800138000``, ``+86 138 0013 8000``, ``(415) 555-0123``."""
    out, end = [], 0
    for match in PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
        e164 = phonenumbers.format_number(match.number, PhoneNumberFormat.E164)
        out += [text[end : match.start], mask_phone(e164)]
        end = match.end
    return "".join(out) + text[end:] if out else text


def scrub(text: str) -> str:
    """``text`` with every email address and phone number in it masked (for reasons, logs and
    the operator page): addresses first (a QQ address is digits), then numbers in any common
    written form, as ``phonenumbers`` recognises valid ones for :data:`REGIONS`, then whatever
    compact ``+E.164`` is left."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    for region in REGIONS:
        text = _mask_numbers(text, region)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
