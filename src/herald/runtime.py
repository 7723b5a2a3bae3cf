"""Everything a worker process builds once: Redis client, scripts, renderer, providers.

Built inside the process's event loop, after fork, and kept for the life of the process.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from herald import store
from herald.catalog import Catalog, cached_catalog
from herald.channels import make_provider
from herald.channels.base import Provider
from herald.config import Settings
from herald.guards import Guard, default_guards
from herald.models import Channel
from herald.ratelimit import Limiter
from herald.redisconn import async_redis_client
from herald.rendering import Renderer


class Runtime:
    """Per-process state of the delivery pipeline."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.pid = os.getpid()
        self.settings = settings
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
        self._providers: dict[Channel, Provider] = {}
        self._lock = asyncio.Lock()

    def sender(self, channel: Channel) -> str:
        """The sender whose own limit applies (the Twilio number or Messaging Service), if any."""
        if channel == "sms" and self.settings.sms_provider == "twilio":
            return self.settings.twilio_from or self.settings.twilio_messaging_service_sid or ""
        return ""

    async def provider(self, channel: Channel) -> Provider:
        """The started provider for ``channel`` (built on first use)."""
        provider = self._providers.get(channel)
        if provider is None:
            async with self._lock:
                provider = self._providers.get(channel)
                if provider is None:
                    provider = make_provider(channel, self.settings)
                    await provider.start()
                    self._providers[channel] = provider
        return provider

    async def close(self) -> None:
        """Close providers and the Redis pool."""
        for provider in self._providers.values():
            await provider.close()
        self._providers.clear()
        await self.redis.aclose()
