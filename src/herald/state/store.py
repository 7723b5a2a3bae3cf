"""Where herald keeps its work in Redis: key names, the Lua scripts, and readers.

Keys (all under ``herald:``):

| key | type | holds |
| --- | --- | --- |
| ``herald:r:<reminder id>`` | hash | the reminder's digest, category, times, cancellation; summaries |
| ``herald:b:<reminder id>`` | string | the reminder body (apart: the record stays a small hash) |
| ``herald:d:<reminder id>:<channel>`` | hash | one delivery's state, outcome, reason, times, lease |
| ``herald:copied`` | sorted set | finished deliveries the ledger copied, scored by when: compacted later |
| ``herald:events`` | stream | one entry per outcome (trimmed to ``HERALD_EVENTS_MAXLEN``) |
| ``herald:scheduled`` | sorted set | deliveries waiting for a time, scored by when they are due |
| ``herald:leases`` | sorted set | claimed deliveries, scored by when their lease ends |
| ``herald:indoubt`` | sorted set | in-doubt deliveries waiting for an operator (``herald resolve``) |
| ``herald:deadletter`` | stream | dead deliveries and unreadable queue messages (``herald deadletter``) |
| ``herald:optout:<channel>`` | set | addresses that opted out of a channel |
| ``herald:optout:<channel>:keyword`` | hash | those of them a keyword may undo (``lua/optout.lua``) |
| ``herald:ref:<provider>:<id>`` | string | a provider's message id -> delivery key, for receipts |
| ``herald:deadlines`` | sorted set | unfinished deliveries, scored by when they should have moved on |
| ``herald:reconcile`` | hash | the reconciler's counters (``republished``) |

Records and states expire ``HERALD_RETENTION_DAYS`` after their reminder expires. A finished
delivery does not wait that long whole: ``HERALD_COMPACT_AFTER`` seconds after the ledger copied
its outcome, ``lua/compact.lua`` folds its state into a one-line summary on the reminder's record
(field ``c:<channel>``) and deletes it; once every delivery of a reminder is folded, its body
goes too. What stays is what idempotency (the digest) and ``herald status`` need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import orjson

from herald import clock

PREFIX = "herald:"
EVENTS = PREFIX + "events"
SCHEDULED = PREFIX + "scheduled"
DEADLINES = PREFIX + "deadlines"
DEADLETTER = PREFIX + "deadletter"
LEASES = PREFIX + "leases"
IN_DOUBT = PREFIX + "indoubt"
COPIED = PREFIX + "copied"
SCRIPTS = (
    "intake",
    "load",
    "keep",
    "queued",
    "claim",
    "settle",
    "defer",
    "due",
    "replay",
    "receipt",
    "leases",
    "resolve",
    "ratelimit",
    "reconcile",
    "cancel",
    "compact",
    "optout",
    "breaker",
)
RECONCILE = PREFIX + "reconcile"


def optout_key(channel: str) -> str:
    """The set of addresses (phone numbers, emails, push tokens) opted out of ``channel``."""
    return f"{PREFIX}optout:{channel}"


def optout_undo_key(channel: str) -> str:
    """The hash of ``channel``'s opt-outs a keyword may undo (address -> the source that added
    it: an inbound keyword or the provider); an opt-out absent from it needs an operator."""
    return f"{PREFIX}optout:{channel}:keyword"


CAPS = PREFIX + "cap:"
"""The prefix of cap sets (``lua/load.lua`` builds their names from it too)."""


def cap_key(account: str, channel: str, category: str) -> str:
    """The sorted set of an account's claimed contacts on a channel and category (frequency caps:
    ``herald.guards.capped``)."""
    return f"{CAPS}{account}:{channel}:{category}"


def provider_ref_key(provider: str, ref: str) -> str:
    """Where a provider's message id points back to its delivery key (for receipts)."""
    return f"{PREFIX}ref:{provider}:{ref}"


def reminder_key(reminder_id: str) -> str:
    """The Redis key of a reminder's record."""
    return f"{PREFIX}r:{reminder_id}"


def body_key(reminder_id: str) -> str:
    """The Redis key of a reminder's body (canonical JSON)."""
    return f"{PREFIX}b:{reminder_id}"


def delivery_redis_key(delivery: str) -> str:
    """The Redis key of a delivery's state hash, from its delivery key."""
    return f"{PREFIX}d:{delivery}"


@cache
def script_source(name: str) -> str:
    """The Lua source of one script, with the shared prelude in front."""
    if name not in SCRIPTS:
        raise KeyError(name)
    lua = resources.files("herald.state") / "lua"
    common = (lua / "_common.lua").read_text("utf-8")
    return common + "\n" + (lua / f"{name}.lua").read_text("utf-8")


def redis_now(client: Any) -> float:
    """Now on Redis's clock (``TIME``) plus the test offset: the clock every script compares
    with, for the few times Python must write one down itself (when a hold began)."""
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000 + clock.offset()


def iso(ts: float | str | None) -> str:
    """An epoch time as ISO-8601 UTC (empty for none)."""
    if ts in (None, ""):
        return ""
    return datetime.fromtimestamp(float(ts), tz=UTC).isoformat(timespec="milliseconds")


def iso_or_none(ts: float | str | None) -> str | None:
    """An epoch time as ISO-8601 UTC, or None for none: how machine output (``herald status
    --json``, the HTTP API) says a time was not reached."""
    return iso(ts) or None


def text_or_none(value: str | None) -> str | None:
    """A stored text, or None where Redis keeps "" (or nothing) for a value not there yet."""
    return value or None


def json_object(raw: str | bytes) -> dict[str, Any]:
    """A stored JSON object (a hold record in the audit trail...); ``{}`` for empty or bad input."""
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def text(value: Any) -> str:
    """A value as Redis answered it (bytes, or already text), as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    """A hash as read from Redis, with bytes decoded."""
    return {text(k): text(v) for k, v in raw.items()}


@dataclass(frozen=True)
class DeliveryView:
    """What ``herald status`` and the API show of one delivery.

    The one place that says what is absent: an outcome, reason or time not reached yet is None
    (JSON null), never "", so ``herald status --json`` and the HTTP API answer alike. Times are
    ISO-8601 UTC; people see them through :mod:`herald.display.timefmt`.
    """

    key: str
    channel: str
    state: str
    outcome: str | None
    reason: str | None
    attempts: int
    accepted_at: str | None
    updated_at: str | None
    finished_at: str | None
    not_before: str | None
    expires_at: str | None
    provider: str | None = None
    """The provider that was called last (the one that sent it, once sent)."""

    @classmethod
    def from_hash(cls, key: str, h: dict[str, str]) -> DeliveryView:
        """Build the view from a delivery's decoded hash."""
        return cls(
            key=key,
            channel=h.get("channel", ""),
            state=h.get("state", ""),
            outcome=text_or_none(h.get("outcome")),
            reason=text_or_none(h.get("reason")),
            attempts=int(h.get("attempts", "0") or 0),
            accepted_at=iso_or_none(h.get("accepted_at")),
            updated_at=iso_or_none(h.get("updated_at")),
            finished_at=iso_or_none(h.get("finished_at")),
            not_before=iso_or_none(h.get("not_before")),
            expires_at=iso_or_none(h.get("expires_at")),
            provider=text_or_none(h.get("provider")),
        )
