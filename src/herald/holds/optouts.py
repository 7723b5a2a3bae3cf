"""Opt-outs: addresses that asked not to be contacted on a channel, honoured at send time.

An opt-out is per channel and per address (an E.164 number, an email address, a push token).
It is added by an operator (``herald optout``), by the provider (Twilio 21610: the recipient
replied STOP; FCM UNREGISTERED: the token is gone), by an inbound STOP keyword or by an email
unsubscribe; a START keyword or an operator removes it. Every change is appended to the
``herald:optout:audit`` stream.
"""

from __future__ import annotations

from typing import Any

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


def keyword_action(body: str) -> str | None:
    """``"out"``, ``"in"`` or None for an inbound message body (the whole body is the keyword)."""
    word = body.strip().strip(".!。！").upper()
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


def _audit_fields(channel: str, address: str, action: str, source: str, by: str) -> dict[Any, Any]:
    return {
        "channel": channel,
        "address": address,
        "action": action,
        "source": source,
        "by": by,
        "at": clock.now().isoformat(timespec="milliseconds"),
    }


class OptOuts:
    """Reads and changes the opt-out sets (synchronous, for the command line and the API)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def add(self, channel: str, address: str, *, source: str, by: str) -> bool:
        """Opt ``address`` out of ``channel``; False if it already was."""
        address = normalize(channel, address)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(store.optout_key(channel), address)
            pipe.xadd(AUDIT, _audit_fields(channel, address, "add", source, by), maxlen=AUDIT_MAXLEN)
            added, _ = pipe.execute()
        return bool(added)

    def remove(self, channel: str, address: str, *, source: str, by: str) -> bool:
        """Opt ``address`` back in; False if it was not opted out."""
        address = normalize(channel, address)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(store.optout_key(channel), address)
            pipe.xadd(AUDIT, _audit_fields(channel, address, "remove", source, by), maxlen=AUDIT_MAXLEN)
            removed, _ = pipe.execute()
        return bool(removed)

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
    async with client.pipeline(transaction=True) as pipe:
        pipe.sadd(store.optout_key(channel), *addresses)
        for address in addresses:
            pipe.xadd(AUDIT, _audit_fields(channel, address, "add", source, by), maxlen=AUDIT_MAXLEN)
        await pipe.execute()
