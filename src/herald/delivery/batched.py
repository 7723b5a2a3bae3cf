"""The delivery pipeline's Redis steps, each for many deliveries in one round trip.

Claims, records (outcomes and waits) and rate-limit reservations are made per delivery, at the
moment each delivery reaches that step; the runtime's :class:`~herald.delivery.coalesce.Coalescer`\\ s
gather the ones made together and call these functions with all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from herald import clock
from herald.config import Settings
from herald.delivery.ratelimit import Grant, Limiter
from herald.delivery.retry import redis_patience
from herald.guards.base import Delivery
from herald.guards.duplicate import recent_key
from herald.holds import suppression
from herald.models import Channel, Outcome
from herald.state import store
from herald.state.scriptcalls import ScriptCall, call_scripts
from herald.values.caps import parse_caps


@dataclass(frozen=True)
class Finish:
    """Record ``outcome`` on a delivery (``token`` when it was claimed).

    ``release``: nothing reached the provider, so the claim's cap entry and duplicate mark are
    given back. ``ref``: the provider's message id, indexed for its receipts in the same call.
    """

    key: str
    outcome: Outcome
    reason: str = ""
    token: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    release: bool = False
    ref: str = ""


@dataclass(frozen=True)
class Later:
    """Set a delivery aside until ``until``, waiting in ``state`` (scheduled or retrying)."""

    key: str
    until: float
    reason: str
    token: str = ""
    state: str = "scheduled"
    release: bool = False


Record = Finish | Later


@dataclass(frozen=True)
class ClaimRequest:
    """Claim ``delivery`` under ``token``; ``windows`` are its send windows (``claim.lua``)."""

    delivery: Delivery
    token: str
    windows: str = ""


class ClaimVerdict(StrEnum):
    """What ``state/lua/claim.lua`` answers first: one name in the script and here (a test holds
    the two to each other)."""

    CLAIMED = "claimed"
    MISSING = "missing"
    NOT_PENDING = "not_pending"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    OPTED_OUT = "opted_out"
    UNKNOWN_SUPPRESSION = "unknown_suppression"
    EARLY = "early"
    WINDOW = "window"
    DUPLICATE = "duplicate"
    CAPPED = "capped"
    OVER_CAP = "over_cap"


FINISHED_BY_CLAIM = frozenset(
    {
        ClaimVerdict.CANCELLED,
        ClaimVerdict.EXPIRED,
        ClaimVerdict.OPTED_OUT,
        ClaimVerdict.SUPPRESSED,
        ClaimVerdict.DUPLICATE,
        ClaimVerdict.OVER_CAP,
    }
)
"""Verdicts with which the claim itself recorded the delivery's outcome."""


@dataclass(frozen=True)
class ClaimAnswer:
    """The claim's verdict and detail, Redis's ``now``, and the addresses it allows."""

    verdict: ClaimVerdict
    detail: str
    now: float
    addresses: list[str]


T = TypeVar("T")
R = TypeVar("R")


def patiently(
    settings: Settings, what: str, flush: Callable[[list[T]], Awaitable[Sequence[R]]]
) -> Callable[[list[T]], Awaitable[Sequence[R]]]:
    """``flush``, waiting out a Redis outage (``HERALD_REDIS_PATIENCE``) before it gives up: a
    provider's answer is kept, and nothing is claimed or sent while Redis is away."""

    async def flush_patiently(items: list[T]) -> Sequence[R]:
        async for attempt in redis_patience(settings, what):
            with attempt:
                return await flush(items)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    return flush_patiently


def rules_arg(text: str, channel: str, category: str) -> str:
    """The caps of one channel and category as the claim script reads them: ``2,86400;1,14400``."""
    return ";".join(f"{n},{w}" for n, w in parse_caps(text).get((channel, category), ()))


async def claim_many(
    client: aioredis.Redis, script: AsyncScript, settings: Settings, requests: list[ClaimRequest]
) -> list[ClaimAnswer]:
    """The atomic claim of each delivery (``lua/claim.lua``), pipelined."""
    offset = clock.offset()
    calls: list[ScriptCall] = []
    for r in requests:
        d = r.delivery
        account = d.state.get("account_id", "")
        keys = [
            store.delivery_redis_key(d.key),
            store.reminder_key(d.state.get("reminder_id", "")),
            store.EVENTS,
            store.DEADLINES,
            store.optout_key(d.channel),
            suppression.holds_key(account),
            suppression.MARKER,
            store.cap_key(account, d.channel, d.category),
            recent_key(account, d.state.get("kind", ""), d.channel),
        ]
        args: list[str | float] = [store.PREFIX, d.key, offset, r.token, settings.lease_seconds]
        args += [settings.events_maxlen, rules_arg(settings.caps, d.channel, d.category)]
        args += [settings.cap_action, settings.duplicate_window, r.windows, *d.addresses]
        calls.append((script, keys, args))
    answers = await call_scripts(client, calls)
    return [
        ClaimAnswer(
            ClaimVerdict(store.text(a[0])), store.text(a[1]), float(a[2]), [store.text(x) for x in a[3:]]
        )
        for a in answers
    ]


async def record_many(
    client: aioredis.Redis, settle: AsyncScript, defer: AsyncScript, settings: Settings, items: list[Record]
) -> list[bool]:
    """Record outcomes (``lua/settle.lua``) and waits (``lua/defer.lua``), pipelined; True where
    recorded (False: the delivery had moved on, e.g. its lease was taken over)."""
    offset = clock.offset()
    ttl = settings.retention_days * 86400
    calls: list[ScriptCall] = []
    for item in items:
        dkey = store.delivery_redis_key(item.key)
        if isinstance(item, Finish):
            keys = [dkey, store.EVENTS, store.DEADLINES, store.DEADLETTER]
            provider = item.extra.get("provider", "")
            if item.ref and provider:
                keys.append(store.provider_ref_key(provider, item.ref))
            flat = [v for pair in item.extra.items() for v in pair]
            args: list[str | float] = [store.PREFIX, item.key, offset, settings.events_maxlen]
            args += [item.outcome.value, item.reason[:500], item.token, int(item.release), ttl, *flat]
            calls.append((settle, keys, args))
        else:
            args = [store.PREFIX, item.key, f"{item.until:.3f}", item.reason[:500], offset]
            args += [settings.visibility_timeout, item.token, item.state, int(item.release)]
            calls.append((defer, [dkey, store.SCHEDULED, store.DEADLINES], args))
    answers = await call_scripts(client, calls)
    return [bool(a) for a in answers]


@dataclass(frozen=True)
class Reservation:
    """Units of a channel's limits for one delivery."""

    channel: Channel
    cost: int
    sender: str = ""
    bulk: bool = False
    """From the bulk lane (collection): it may reserve less far ahead (``Limiter.reserve``)."""
    provider: str = ""
    """The provider it goes through (each has its own limit); default: the channel's first."""


async def reserve_many(limiter: Limiter, requests: list[Reservation]) -> list[Grant]:
    """Rate-limit units for each delivery, in order, one pipelined call per channel, sender,
    lane and provider."""
    grants: list[Grant | None] = [None] * len(requests)
    groups: dict[tuple[Channel, str, bool, str], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.channel, r.sender, r.bulk, r.provider), []).append(i)
    for (channel, sender, bulk, provider), indexes in groups.items():
        costs = [requests[i].cost for i in indexes]
        answers = await limiter.reserve(channel, costs, sender, bulk=bulk, provider=provider)
        for i, grant in zip(indexes, answers, strict=True):
            grants[i] = grant
    return [g for g in grants if g is not None]
