"""Cluster-wide rate limits: GCRA in Redis (``lua/ratelimit.lua``), on Redis's clock.

Each channel's provider has one limit (``HERALD_RATE_SMS`` / ``_EMAIL`` / ``_PUSH``, e.g.
``30/s`` or ``1000/m``) with a burst (``HERALD_RATE_SMS_BURST`` ...: how many units may go at
once), and SMS optionally one per sender number (``HERALD_RATE_SMS_SENDER``). A unit is an SMS
segment, an email, or a push message to one device. Limits hold across every worker process
and host because they live in Redis; Celery's per-worker ``rate_limit`` is never used.

A delivery reserves its units before its claim. A reservation that must wait at most
``HERALD_RATE_MAX_WAIT`` seconds is awaited in the worker's event loop; a longer one reserves
nothing and the delivery goes to the scheduler until the limit has room.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from herald.config import Settings
from herald.models import Channel
from herald.state import store
from herald.state.scriptcalls import ScriptCall, call_scripts
from herald.values.rates import Rate, parse_rate

PREFIX = store.PREFIX + "rl:"


@dataclass(frozen=True)
class Grant:
    """The limiter's answer for one delivery: when it may go, or when to come back."""

    granted: bool
    wait: float  # seconds


GRANTED_NOW = Grant(True, 0.0)
BULK_SHARE = 0.5
"""Of ``HERALD_RATE_MAX_WAIT``, how far ahead a bulk-lane delivery may reserve: the rest is
headroom the priority lanes always find free."""


class Limiter:
    """Reserves units of the provider's (and the sender's) limit for deliveries, pipelined."""

    def __init__(self, settings: Settings, client: aioredis.Redis, script: AsyncScript) -> None:
        self.settings = settings
        self.redis = client
        self.script = script
        self.max_wait_us = round(settings.rate_max_wait * 1_000_000)
        self._limits: dict[tuple[Channel, str, str], list[tuple[str, Rate]]] = {}

    def limits(self, channel: Channel, sender: str = "", provider: str = "") -> list[tuple[str, Rate]]:
        """The keys and rates that a delivery on ``channel`` through ``provider`` (default: the
        channel's first) from ``sender`` must pass."""
        cached = self._limits.get((channel, sender, provider))
        if cached is None:
            cached = limits_for(self.settings, channel, sender, provider)
            self._limits[(channel, sender, provider)] = cached
        return cached

    async def reserve(
        self, channel: Channel, costs: list[int], sender: str = "", *, bulk: bool = False, provider: str = ""
    ) -> list[Grant]:
        """Reserve ``costs`` units for each delivery, in order, in one pipelined round trip.

        A delivery may wait up to ``HERALD_RATE_MAX_WAIT`` for its units; one from the bulk lane
        only up to :data:`BULK_SHARE` of it. So a backlog of collection reminders keeps the
        limit's reservations at most that far ahead, and an agreement or transactional delivery
        always finds its units within ``HERALD_RATE_MAX_WAIT``: it is never sent to the
        scheduler to queue behind the campaign."""
        limits = self.limits(channel, sender, provider)
        if not limits or not costs:
            return [GRANTED_NOW for _ in costs]
        keys = [key for key, _ in limits]
        wait = round(self.max_wait_us * BULK_SHARE) if bulk else self.max_wait_us
        tail: list[int] = []
        for _, rate in limits:
            tail += [rate.interval_us, rate.tolerance_us]
        calls: list[ScriptCall] = [(self.script, keys, [max(1, cost), wait, "", *tail]) for cost in costs]
        answers = await call_scripts(self.redis, calls)
        return [Grant(bool(int(g)), int(w) / 1_000_000) for g, w in answers]


def limits_for(
    settings: Settings, channel: Channel, sender: str = "", provider: str = ""
) -> list[tuple[str, Rate]]:
    """The limits of ``channel``'s ``provider`` (default: its first), and of the sender number
    for SMS. Each provider of a channel has a limit of its own, at the channel's rate."""
    s = settings
    spec, burst = {
        "sms": (s.rate_sms, s.rate_sms_burst),
        "email": (s.rate_email, s.rate_email_burst),
        "push": (s.rate_push, s.rate_push_burst),
    }[channel]
    provider = provider or s.providers(channel)[0]
    out: list[tuple[str, Rate]] = []
    rate = parse_rate(spec, burst)
    if rate is not None:
        out.append((f"{PREFIX}{channel}:{provider}", rate))
    if channel == "sms" and sender and s.rate_sms_sender:
        per_sender = parse_rate(s.rate_sms_sender)
        if per_sender is not None:
            out.append((f"{PREFIX}sms:{provider}:sender:{sender}", per_sender))
    return out


def cost_of(channel: Channel, segments: int | None, addresses: int) -> int:
    """Units a delivery takes: an SMS its segments, a push one per device, an email one."""
    if channel == "sms":
        return max(1, segments or 1)
    if channel == "push":
        return max(1, addresses)
    return 1
