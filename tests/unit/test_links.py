"""Unsubscribe tokens: opaque, bound to channel and address, unforgeable, old ones honoured."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from herald.rendering.links import read_unsubscribe_token, unsubscribe_token

SECRET = "a-secret-of-at-least-32-bytes-0123456789"


def _old_token(secret: str, channel: str, address: str) -> str:
    """A token as herald made them before they were encrypted: base64 address, then an HMAC."""
    encoded = base64.urlsafe_b64encode(f"{channel}:{address}".encode()).decode().rstrip("=")
    digest = hmac.new(secret.encode(), f"{channel}\n{address}".encode(), hashlib.sha256).digest()
    return f"{encoded}.{base64.urlsafe_b64encode(digest[:18]).decode().rstrip('=')}"


@pytest.mark.parametrize("address", ["li.wei@example.cn", "13800138000@qq.com", "borrower+1@mail.example"])
def test_a_token_names_its_channel_and_address_and_shows_neither(address: str) -> None:
    token = unsubscribe_token(SECRET, "email", address)

    assert read_unsubscribe_token(SECRET, token) == ("email", address)
    assert token.replace("-", "").replace("_", "").isalnum()  # fits a URL path as it is
    revealing = [address, address.split("@")[0], base64.urlsafe_b64encode(address.encode()).decode()[:8]]
    assert not any(part in token for part in revealing)
    assert unsubscribe_token(SECRET, "email", address) == token  # the header's and the body's agree
    assert unsubscribe_token(SECRET, "sms", address) != token
    assert unsubscribe_token(SECRET, "email", address + "x")[:16] != token[:16]  # another nonce


def test_a_token_cannot_be_forged_altered_or_read_with_another_secret() -> None:
    token = unsubscribe_token(SECRET, "email", "li.wei@example.cn")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, token[:-4], "", "x" * 60, _old_token("other-secret", "email", "x@y.z")):
        with pytest.raises(ValueError, match="unsubscribe token"):
            read_unsubscribe_token(SECRET, bad)
    with pytest.raises(ValueError, match="invalid unsubscribe token"):
        read_unsubscribe_token("another-secret-of-32-bytes-or-more-xx", token)


def test_links_already_sent_in_the_earlier_form_still_work() -> None:
    old = _old_token(SECRET, "email", "li.wei@example.cn")
    assert read_unsubscribe_token(SECRET, old) == ("email", "li.wei@example.cn")
