"""Everything a worker process builds once: Redis client, scripts, renderer, providers, its send
slots, the keeper of what it holds, and the coalescers that batch its Redis calls.

Built inside the process's event loop, after fork, and kept for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
import time
from functools import partial

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from herald.channels import approved_only, make_provider
from herald.channels.base import Provider
from herald.config import Settings
from herald.delivery.batched import (
    ClaimAnswer,
    ClaimRequest,
    Record,
    Reservation,
    claim_many,
    patiently,
    record_many,
    reserve_many,
)
from herald.delivery.coalesce import Coalescer
from herald.delivery.keeper import Keeper
from herald.delivery.ratelimit import Grant, Limiter
from herald.delivery.retry import REDIS_DOWN
from herald.guards import Guard, default_guards
from herald.models import Channel
from herald.rendering.catalog import Catalog, cached_catalog
from herald.rendering.renderer import Renderer
from herald.routing.breaker import Breakers
from herald.routing.router import Router
from herald.state import store
from herald.state.redisconn import async_redis_client
from herald.values.caps import parse_caps


class Runtime:
    """Per-process state of the delivery pipeline."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.pid = os.getpid()
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{self.pid}:{secrets.token_hex(3)}"
        self.catalog = catalog or cached_catalog(settings.templates_dir)
        self.renderer = Renderer(self.catalog, settings)
        self.redis: aioredis.Redis = async_redis_client(
            settings.redis_url, settings, max_connections=64, health_check_interval=30
        )
        self.scripts: dict[str, AsyncScript] = {
            name: self.redis.register_script(store.script_source(name)) for name in store.SCRIPTS
        }
        self.limiter = Limiter(settings, self.redis, self.scripts["ratelimit"])
        self.guards: list[Guard] = default_guards()
        self.in_flight = asyncio.Semaphore(settings.in_flight)
        self.keeper = Keeper(self.redis, self.scripts["keep"], self.holder, settings.hold_seconds)
        self.stopping = asyncio.Event()
        self._skew = 0.0  # Redis's clock (with the test offset) minus this host's, last seen
        self.router = Router(settings)
        guarded = self.router.guarded()
        self.breakers = (
            Breakers(settings, self.redis, self.scripts["breaker"], guarded, self.clock) if guarded else None
        )
        self._watching: asyncio.Task[None] | None = None
        self._approved: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._providers: dict[tuple[Channel, str], Provider] = {}
        self._slots: dict[Channel, asyncio.Semaphore] = {}
        self._lock = asyncio.Lock()
        self._keeping: asyncio.Task[None] | None = None
        # the pipeline's Redis steps, each coalesced over the deliveries that reach it together
        self.claims: Coalescer[ClaimRequest, ClaimAnswer] = Coalescer(
            patiently(settings, "claiming", partial(claim_many, self.redis, self.scripts["claim"], settings))
        )
        self.records: Coalescer[Record, bool] = Coalescer(
            patiently(
                settings,
                "recording outcomes",
                partial(record_many, self.redis, self.scripts["settle"], self.scripts["defer"], settings),
            )
        )
        self.reservations: Coalescer[Reservation, Grant] = Coalescer(
            patiently(settings, "reserving rate-limit units", partial(reserve_many, self.limiter))
        )

    @functools.cached_property
    def capped_windows(self) -> str:
        """The channels and categories a cap applies to, with their longest window, as
        ``lua/load.lua`` reads them: ``sms.collection=86400;email.collection=86400``."""
        caps = parse_caps(self.settings.caps)
        return ";".join(
            f"{ch}.{cat}={max(w for _, w in rules)}" for (ch, cat), rules in caps.items() if rules
        )

    def clock(self) -> float:
        """Now on Redis's clock (as last measured against this host's), in epoch seconds: what
        the pipeline computes waits from, so they agree with the scripts that compare them."""
        return time.time() + self._skew

    def observe_clock(self, redis_now: float) -> None:
        """A script answered with Redis's ``now``: keep the difference to this host's clock."""
        self._skew = redis_now - time.time()

    def keep(self) -> None:
        """Start renewing what this process holds, and reporting to the breakers (once per
        process)."""
        loop = asyncio.get_running_loop()
        if self._keeping is None or self._keeping.done():
            self._keeping = loop.create_task(self.keeper.run())
        if self.breakers is not None and (self._watching is None or self._watching.done()):
            self._watching = loop.create_task(self.breakers.run())

    def sender(self, channel: Channel, provider: str) -> str:
        """The sender whose own limit applies (the Twilio number or Messaging Service), if any."""
        if channel == "sms" and provider == "twilio":
            return self.settings.twilio_from or self.settings.twilio_messaging_service_sid or ""
        return ""

    def approved(self, names: list[str]) -> tuple[str, ...]:
        """Of ``names``, the providers that send only approved templates (their code and
        parameters are rendered with the message)."""
        key = tuple(names)
        found = self._approved.get(key)
        if found is None:
            found = approved_only(names)
            self._approved[key] = found
        return found

    async def provider(self, channel: Channel, name: str) -> Provider:
        """The started provider ``name`` for ``channel`` (built on first use). The channel's
        send slots are sized by the first one built."""
        provider = self._providers.get((channel, name))
        if provider is None:
            async with self._lock:
                provider = self._providers.get((channel, name))
                if provider is None:
                    provider = make_provider(channel, self.settings, name)
                    await provider.start()
                    if channel not in self._slots:
                        capacity = provider.capacity() or self.settings.in_flight
                        self._slots[channel] = asyncio.Semaphore(min(capacity, self.settings.in_flight))
                    self._providers[(channel, name)] = provider
        return provider

    def slot(self, channel: Channel) -> asyncio.Semaphore:
        """The channel's send slots: as many as its provider can have requests out (its own
        connection pool) and never more than ``HERALD_IN_FLIGHT`` (after :meth:`provider`)."""
        return self._slots[channel]

    async def close(self) -> None:
        """Stop renewing, hand back what was taken and not claimed, close providers and the
        Redis pool."""
        if self._keeping is not None:
            self._keeping.cancel()
        if self._watching is not None:
            self._watching.cancel()
        with contextlib.suppress(*REDIS_DOWN):
            await self.keeper.hand_back(self.scripts["queued"])
        for provider in self._providers.values():
            await provider.close()
        self._providers.clear()
        await self.redis.aclose()
