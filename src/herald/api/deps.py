"""What every route needs: the settings and a Redis client, one per app."""

from __future__ import annotations

import redis
from fastapi import Request

from herald.config import Settings


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def redis_of(request: Request) -> redis.Redis:
    """The app's Redis client (thread-safe pool; routes run in the threadpool)."""
    client: redis.Redis = request.app.state.redis
    return client


def public_url_of(request: Request, settings: Settings) -> str:
    """The URL a provider signed: HERALD_PUBLIC_URL plus the path and query it called."""
    base = settings.public_url or str(request.base_url).rstrip("/")
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"
