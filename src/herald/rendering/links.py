"""Links herald puts in messages: signed one-click unsubscribe URLs.

A token is the address (base64url) and an HMAC-SHA256 of channel and address under
``HERALD_SECRET_KEY``: it cannot be forged to opt somebody else out, and it needs no storage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from herald.config import Settings

UNSUBSCRIBE_PATH = "/v1/unsubscribe"


def _mac(secret: str, channel: str, address: str) -> str:
    digest = hmac.new(secret.encode(), f"{channel}\n{address}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def unsubscribe_token(secret: str, channel: str, address: str) -> str:
    """A token naming ``address`` on ``channel``, signed with ``secret``."""
    encoded = base64.urlsafe_b64encode(f"{channel}:{address}".encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(secret, channel, address)}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str]:
    """(channel, address) of a valid token; ValueError for a forged or malformed one."""
    encoded, _, mac = token.partition(".")
    try:
        channel, _, address = (
            base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode().partition(":")
        )
    except (ValueError, UnicodeDecodeError):
        raise ValueError("malformed unsubscribe token") from None
    if not address or not hmac.compare_digest(mac, _mac(secret, channel, address)):
        raise ValueError("invalid unsubscribe token")
    return channel, address


def unsubscribe_url(settings: Settings, channel: str, address: str) -> str | None:
    """The one-click unsubscribe URL, or None without HERALD_PUBLIC_URL and HERALD_SECRET_KEY."""
    if not settings.public_url or settings.secret_key is None:
        return None
    token = unsubscribe_token(settings.secret_key.get_secret_value(), channel, address)
    return f"{settings.public_url}{UNSUBSCRIBE_PATH}/{token}"
