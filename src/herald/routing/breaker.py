"""Circuit breakers, one per provider, shared by every worker process through Redis.

A provider that keeps failing retryably or ambiguously (connection refused, 503, 500,
timeouts) is skipped for ``HERALD_BREAKER_COOLDOWN`` seconds once, over the last
``HERALD_BREAKER_WINDOW`` seconds, at least ``HERALD_BREAKER_MIN_CALLS`` calls were made and at
least ``HERALD_BREAKER_ERROR_RATE`` of them failed; a provider that says it is down (out of
credit, suspended, credentials refused: ``ProviderDown``) is skipped at once. The counts and
the open state live in Redis (``lua/breaker.lua``, on Redis's clock), so what one process sees
protects all of them.

What does not count: a permanent refusal or an opt-out (the provider works; the message or the
recipient is the problem) and a ``Deferred`` (a limit on one recipient).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from herald import clock
from herald import instruments as metrics
from herald.channels.base import (
    Deferred,
    PermanentError,
    ProviderDown,
    ProviderError,
)
from herald.config import Settings
from herald.state import store
from herald.state.scriptcalls import ScriptCall, call_scripts

log = logging.getLogger("herald.routing.breaker")

FLUSH_INTERVAL = 0.5
"""Seconds between a process's reports to Redis (and its refresh of every breaker's state)."""

BREAKERS = store.PREFIX + "breakers"
"""Per provider, its breaker's last opening: ``opened_at|until|reason``."""


def counts_key(provider: str) -> str:
    """The provider's calls by second."""
    return f"{store.PREFIX}breaker:{provider}"


def open_key(provider: str) -> str:
    """Until when the provider's breaker is open."""
    return f"{store.PREFIX}breaker:{provider}:open"


def verdict(exc: BaseException | None) -> str:
    """How a call counts: ``ok``, ``failed``, ``down`` (open at once) or ``neutral``. An
    unknown exception counts against the provider, like an ambiguous answer."""
    if exc is None or isinstance(exc, PermanentError):
        return "ok"
    if isinstance(exc, Deferred):
        return "neutral"
    if isinstance(exc, ProviderDown):
        return "down"
    return "failed"


@dataclass
class _Tally:
    ok: int = 0
    failed: int = 0
    down: str = ""


@dataclass(frozen=True)
class Opening:
    """A breaker's last opening, as ``herald status`` and the API show it."""

    provider: str
    opened_at: float
    until: float
    reason: str


class Breakers:
    """This process's view of the providers' breakers, and its reports to Redis.

    Parameters: the settings (window, minimum calls, error rate, cool-down), the process's async
    Redis client, the ``breaker`` script, the providers to watch, and ``now`` (Redis's clock as
    the runtime last measured it). Hook: :meth:`run`, a task on the process's loop that reports
    this process's calls and refreshes every breaker every :data:`FLUSH_INTERVAL` seconds (or at
    once when a provider says it is down).
    """

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        script: AsyncScript,
        providers: tuple[str, ...],
        now: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.redis = client
        self.script = script
        self.providers = providers
        self.now = now
        self._tally = {p: _Tally() for p in providers}
        self._open_until = dict.fromkeys(providers, 0.0)
        self._wake = asyncio.Event()

    def observe(self, provider: str, exc: BaseException | None) -> None:
        """Count one call's answer (``exc`` None: accepted)."""
        tally = self._tally.get(provider)
        if tally is None:
            return
        kind = verdict(exc)
        if kind == "ok":
            tally.ok += 1
        elif kind == "failed":
            tally.failed += 1
        elif kind == "down":
            tally.failed += 1
            why = exc.reason() if isinstance(exc, ProviderError) else str(exc)
            tally.down = f"{provider} is down: {why}"[:300]
            self._open_until[provider] = max(
                self._open_until[provider], self.now() + self.settings.breaker_cooldown
            )
            self._wake.set()

    def is_open(self, provider: str) -> bool:
        """Whether ``provider`` is being skipped (as of this process's last refresh)."""
        return self._open_until.get(provider, 0.0) > self.now()

    def open_until(self, provider: str) -> float:
        """Until when ``provider`` is skipped (0: it is not)."""
        until = self._open_until.get(provider, 0.0)
        return until if until > self.now() else 0.0

    async def flush(self) -> list[str]:
        """Report the calls counted since the last flush and refresh every breaker; returns
        the providers whose breaker this report opened."""
        s = self.settings
        calls: list[ScriptCall] = []
        reported: list[tuple[str, _Tally]] = []
        for provider in self.providers:
            tally, self._tally[provider] = self._tally[provider], _Tally()
            reported.append((provider, tally))
            keys = [counts_key(provider), open_key(provider), BREAKERS]
            args: list[str | float] = [store.PREFIX, clock.offset(), provider, tally.ok, tally.failed]
            args.append(int(bool(tally.down)))
            args += [
                tally.down,
                s.breaker_window,
                s.breaker_min_calls,
                s.breaker_error_rate,
                s.breaker_cooldown,
            ]
            calls.append((self.script, keys, args))
        try:
            answers = await call_scripts(self.redis, calls)
        except BaseException:
            for provider, tally in reported:  # counted again in the next report
                mine = self._tally[provider]
                mine.ok, mine.failed = mine.ok + tally.ok, mine.failed + tally.failed
                mine.down = mine.down or tally.down
            raise
        opened: list[str] = []
        for (provider, _), answer in zip(reported, answers, strict=True):
            is_open, until = int(answer[0]), float(answer[1])
            # a provider found down while this report was on its way stays skipped here; the
            # next report opens its breaker for everyone
            pending = bool(self._tally[provider].down)
            self._open_until[provider] = (
                until if is_open else (self._open_until[provider] if pending else 0.0)
            )
            metrics.record_breaker(provider, bool(is_open))
            if int(answer[3]):
                opened.append(provider)
                metrics.record_breaker_opened(provider)
                log.warning(
                    "%s: breaker open until %s (%s calls, %s failed): traffic goes to the next "
                    "provider of each route",
                    provider,
                    store.iso(until),
                    answer[4],
                    answer[5],
                )
        return opened

    async def run(self) -> None:
        """Report and refresh every :data:`FLUSH_INTERVAL` seconds, for the life of the process."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL)
            self._wake.clear()
            try:
                await self.flush()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("breakers: could not report to Redis: %s", exc)
            except Exception:  # never let the breakers' task die with the process still working
                log.exception("breakers: report failed")


def openings(fields: Mapping[bytes | str, bytes | str]) -> list[Opening]:
    """The ``herald:breakers`` hash (as HGETALL answers it) as openings, newest first."""
    found = []
    for provider, value in store.decode_hash(dict(fields)).items():
        opened_at, until, reason = value.split("|", 2)
        found.append(Opening(provider, float(opened_at), float(until), reason))
    return sorted(found, key=lambda o: -o.opened_at)
