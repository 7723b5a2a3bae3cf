"""Links herald puts in messages: signed one-click unsubscribe URLs.

A token is the channel and the address encrypted and authenticated with AES-GCM under a key
derived from ``HERALD_SECRET_KEY``: it cannot be forged to opt somebody else out, it needs no
storage, and a link that is forwarded or logged shows nothing of the address. Tokens of the
earlier form (the address in base64 and an HMAC) are still honoured: links already sent keep
working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from herald.config import Settings

UNSUBSCRIBE_PATH = "/v1/unsubscribe"
_CONTEXT = b"herald unsubscribe token v2"
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@cache
def _cipher(secret: str) -> AESGCM:
    """AES-256-GCM under a key of its own, derived from the secret (HMAC-SHA256 with a label)."""
    return AESGCM(hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest())


@cache
def _nonce_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT + b" nonce", hashlib.sha256).digest()


def _mac(secret: str, channel: str, address: str) -> str:
    digest = hmac.new(secret.encode(), f"{channel}\n{address}".encode(), hashlib.sha256).digest()
    return _b64(digest[:18])


def unsubscribe_token(secret: str, channel: str, address: str) -> str:
    """An opaque token naming ``address`` on ``channel``, encrypted and signed with ``secret``.

    The nonce is derived from the plaintext with a key of its own (a synthetic IV): the same
    address gets the same token, so the link in a message's body and in its header agree, and
    two different plaintexts never share a nonce."""
    plain = f"{channel}:{address}".encode()
    nonce = hmac.new(_nonce_key(secret), plain, hashlib.sha256).digest()[:_NONCE]
    return _b64(nonce + _cipher(secret).encrypt(nonce, plain, _CONTEXT))


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str]:
    """(channel, address) of a valid token; ValueError for a forged or malformed one."""
    if "." in token:
        return _read_signed(secret, token)
    try:
        raw = _unb64(token)
        plain = _cipher(secret).decrypt(raw[:_NONCE], raw[_NONCE:], _CONTEXT).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise ValueError("invalid unsubscribe token") from None
    channel, _, address = plain.partition(":")
    if not address:
        raise ValueError("invalid unsubscribe token")
    return channel, address


def _read_signed(secret: str, token: str) -> tuple[str, str]:
    """A token of the earlier form: the address in base64, then an HMAC of channel and address."""
    encoded, _, mac = token.partition(".")
    try:
        channel, _, address = _unb64(encoded).decode().partition(":")
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
