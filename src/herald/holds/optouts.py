"""Opt-outs: addresses that asked not to be contacted on a channel, honoured at send time.

An opt-out is per channel and per address (an E.164 number, an email address, a push token).
It is added by an operator (``herald optout``), by the provider (Twilio 21610: the recipient
replied STOP; FCM UNREGISTERED: the token is gone), by an inbound STOP keyword or by an email
unsubscribe. A START keyword removes only an opt-out that a keyword or the provider made; one an
operator or an unsubscribe link made needs an operator (``lua/optout.lua`` keeps which is which).
Every change is appended to the ``herald:optout:audit`` stream.
"""

from __future__ import annotations

import unicodedata

import redis
import redis.asyncio as aioredis

from herald import clock
from herald.models import CHANNELS
from herald.state import store

AUDIT = store.PREFIX + "optout:audit"
AUDIT_MAXLEN = 1_000_000

# Twilio's default opt-out and opt-in keywords, plus the Chinese conventions (退订, TD, T).
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "TD", "T", "退订"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES", "订阅"})


_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\ufeff",
    )
)
"""Zero-width and bidirectional marks a phone may put around a keyword."""


def keyword_action(body: str) -> str | None:
    """``"out"``, ``"in"`` or None for an inbound message body (the whole body is the keyword).

    The body is first normalised (NFKC: full-width ``ＳＴＯＰ`` is ``STOP``), stripped of
    zero-width and direction marks, spaces and closing punctuation."""
    word = unicodedata.normalize("NFKC", body).translate(_INVISIBLE).strip().strip(".!。！").strip().upper()
    if word in OPT_OUT_WORDS:
        return "out"
    if word in OPT_IN_WORDS:
        return "in"
    return None


def normalize(channel: str, address: str) -> str:
    """The form an address is stored in: E.164 for phones, lower case for email."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    address = address.strip()
    if channel == "sms":
        from herald.models import _e164

        return _e164(address)
    if channel == "email":
        if "@" not in address:
            raise ValueError("is not an email address")
        return address.lower()
    if not address:
        raise ValueError("a push token cannot be empty")
    return address


KEYWORD_REFUSED = -1
"""What :meth:`OptOuts.change` answers for a keyword that may not undo an opt-out."""


def _script_args(channel: str, action: str, source: str, by: str, addresses: list[str]) -> list[str | int]:
    at = clock.now().isoformat(timespec="milliseconds")
    return [store.PREFIX, action, source, by, channel, at, AUDIT_MAXLEN, *addresses]


def _keys(channel: str) -> list[str]:
    return [store.optout_key(channel), store.optout_undo_key(channel), AUDIT]


class OptOuts:
    """Reads and changes the opt-out sets (synchronous, for the command line and the API)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._script = client.register_script(store.script_source("optout"))

    def change(self, channel: str, address: str, action: str, *, source: str, by: str) -> int:
        """``add`` or ``remove`` one opt-out (``lua/optout.lua``): 1 changed, 0 already so,
        :data:`KEYWORD_REFUSED` for a keyword that may not undo it."""
        address = normalize(channel, address)
        args = _script_args(channel, action, source, by, [address])
        return int(self._script(keys=_keys(channel), args=args)[0])

    def add(self, channel: str, address: str, *, source: str, by: str) -> bool:
        """Opt ``address`` out of ``channel``; False if it already was."""
        return self.change(channel, address, "add", source=source, by=by) == 1

    def remove(self, channel: str, address: str, *, source: str, by: str) -> bool:
        """Opt ``address`` back in; False if it was not opted out, or if ``source`` is a
        keyword and an operator or a link made the opt-out."""
        return self.change(channel, address, "remove", source=source, by=by) == 1

    def contains(self, channel: str, address: str) -> bool:
        """Whether ``address`` is opted out of ``channel``."""
        return bool(self.redis.sismember(store.optout_key(channel), normalize(channel, address)))

    def list(self, channel: str, *, cursor: int = 0, count: int = 100) -> tuple[int, list[str]]:
        """One page of a channel's opt-outs: (next cursor, addresses); cursor 0 ends."""
        next_cursor, members = self.redis.sscan(store.optout_key(channel), cursor=cursor, count=count)
        return int(next_cursor), sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


async def add_async(
    client: aioredis.Redis, channel: str, addresses: list[str], *, source: str, by: str
) -> None:
    """Opt addresses out from inside the pipeline (a provider said they are gone)."""
    if not addresses:
        return
    script = client.register_script(store.script_source("optout"))
    await script(keys=_keys(channel), args=_script_args(channel, "add", source, by, addresses))
