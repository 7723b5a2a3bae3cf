"""Redis clients from ``HERALD_REDIS_URL``: one Redis server, or a master found through Sentinel.

herald keeps its broker and its state in one Redis, so the one setting must work for both
kombu (the broker) and redis-py (everything else). It takes kombu's URL forms:

- ``redis://[[user]:password@]host:port/db``, ``rediss://...`` (TLS), ``unix:///path?db=N``: one
  server, read by ``redis.Redis.from_url``;
- ``sentinel://[[user]:password@]host:26379/db;sentinel://host2:26379/db;...``: the Sentinels
  to ask for the current master, separated by ``;``. ``HERALD_REDIS_SENTINEL_MASTER`` names the
  master they monitor (``sentinel monitor <name> ...``); the user, password and database of the
  first URL are the master's, as kombu reads them; ``HERALD_REDIS_SENTINEL_PASSWORD`` is the
  Sentinels' own password, when they require one (``requirepass`` in sentinel.conf).

A client made here for a Sentinel URL asks the Sentinels for the master on every new
connection, so after a failover it reconnects to the promoted replica by itself. Redis Cluster
is not supported: Celery's Redis transport cannot use it (its commands span keys in different
slots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from herald.values.redis_urls import (
    SENTINEL_TIMEOUT,
    RedisURLError,
    SentinelTarget,
    display_redis_url,
    is_sentinel,
    parse_sentinel,
)

if TYPE_CHECKING:
    from herald.config import Settings


@dataclass(frozen=True)
class SentinelOptions:
    """The settings that go with a Sentinel URL."""

    master: str | None
    password: str | None = None

    @classmethod
    def of(cls, settings: Settings | None) -> SentinelOptions:
        """The options in ``settings`` (the environment's when None)."""
        if settings is None:
            from herald.config import get_settings

            settings = get_settings()
        secret = settings.redis_sentinel_password
        return cls(settings.redis_sentinel_master, secret.get_secret_value() if secret else None)

    def master_name(self) -> str:
        """The monitored master's name; ``RedisURLError`` when it is not configured."""
        if not self.master:
            raise RedisURLError(
                "HERALD_REDIS_SENTINEL_MASTER must name the master the Sentinels monitor "
                "(the <name> of `sentinel monitor <name> <ip> <port> <quorum>`)"
            )
        return self.master


def _sentinel_kwargs(
    options: SentinelOptions, kwargs: dict[str, Any], *, asynchronous: bool = False
) -> dict[str, Any]:
    """Connection options for the Sentinels themselves: their own password, short timeouts and
    no retries, so that a Sentinel host that is down costs one refused (or timed-out) connection
    before the next Sentinel is asked, not redis-py's retries with backoff (seconds each)."""
    own = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    own.setdefault("socket_connect_timeout", SENTINEL_TIMEOUT)
    own.setdefault("socket_timeout", SENTINEL_TIMEOUT)
    own["retry"] = AsyncRetry(NoBackoff(), 0) if asynchronous else Retry(NoBackoff(), 0)
    if options.password:
        own["password"] = options.password
    return own


def _master_kwargs(target: SentinelTarget, kwargs: dict[str, Any]) -> dict[str, Any]:
    login: dict[str, Any] = {"db": target.db}
    if target.username:
        login["username"] = target.username
    if target.password is not None:
        login["password"] = target.password
    return {**login, **kwargs}


# redis-py annotates these constructors and ``master_for`` in some releases and not in others:
# called through these typed names, the calls type-check against either.
_sentinel: Callable[..., Sentinel] = Sentinel
_async_sentinel: Callable[..., AsyncSentinel] = AsyncSentinel


def redis_client(url: str, settings: Settings | None = None, **kwargs: Any) -> redis.Redis:
    """A synchronous client on ``url`` (``kwargs`` go to every connection, e.g. timeouts).

    For a Sentinel URL the master's name and the Sentinels' password come from ``settings``
    (the environment's when None)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    target = parse_sentinel(url)
    options = SentinelOptions.of(settings)
    sentinels = list(target.sentinels)
    sentinel = _sentinel(sentinels, sentinel_kwargs=_sentinel_kwargs(options, kwargs))
    master_for: Callable[..., redis.Redis] = sentinel.master_for
    return master_for(options.master_name(), **_master_kwargs(target, kwargs))


POOL_WAIT = 30.0
"""Seconds a caller of a worker's client waits for one of its connections to be free."""


def async_redis_client(url: str, settings: Settings | None = None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client on ``url``, as :func:`redis_client`. With ``max_connections``, a call
    that finds every connection busy waits for one (up to :data:`POOL_WAIT` s) instead of
    failing: a worker with many batches in hand queues its Redis calls rather than backing off
    as if Redis were down."""
    if not is_sentinel(url):
        if "max_connections" in kwargs:
            pool = aioredis.BlockingConnectionPool.from_url(url, timeout=POOL_WAIT, **kwargs)
            return aioredis.Redis.from_pool(pool)
        return aioredis.Redis.from_url(url, **kwargs)
    target = parse_sentinel(url)
    options = SentinelOptions.of(settings)
    sentinels = list(target.sentinels)
    own = _sentinel_kwargs(options, kwargs, asynchronous=True)
    sentinel = _async_sentinel(sentinels, sentinel_kwargs=own)
    master_for: Callable[..., aioredis.Redis] = sentinel.master_for
    return master_for(options.master_name(), **_master_kwargs(target, kwargs))


MEMORY_WARNING = 0.9
"""The share of ``maxmemory`` past which ``/healthz`` reports memory pressure (writes fail at 1)."""


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write because it reached ``maxmemory`` (directly, or
    wrapped by kombu on a publish)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_failure(exc: BaseException, url: str) -> str:
    """What went wrong talking to Redis, in words an operator acts on: a full Redis (it answers
    but refuses writes) is not an unreachable one."""
    if is_full(exc):
        return (
            f"Redis at {display_redis_url(url)} is full: it refuses writes (used memory reached "
            "maxmemory). Free memory or raise maxmemory; nothing is lost by trying again"
        )
    return f"cannot reach Redis at {display_redis_url(url)}: {exc}"


def memory_use(client: redis.Redis) -> tuple[int, int]:
    """``(used_memory, maxmemory)`` in bytes; maxmemory 0 means no limit."""
    info: dict[str, Any] = client.info("memory")
    return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))


def settings_client(settings: Settings, **kwargs: Any) -> redis.Redis:
    """A synchronous client on ``settings.redis_url`` with ``settings``' Sentinel options."""
    return redis_client(settings.redis_url, settings, **kwargs)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """What kombu's Sentinel transport needs besides the URL (nothing for one server)."""
    if not is_sentinel(settings.redis_url):
        return {}
    options = SentinelOptions.of(settings)
    return {"master_name": options.master_name(), "sentinel_kwargs": _sentinel_kwargs(options, {})}
