"""System health, for ``/healthz`` and the deploy healthcheck: Redis reachable and not about to
refuse writes, worker processes alive, and consuming when there is work to consume.

It reads the workers' heartbeats (``herald.ops.heartbeat``) and the consumption watchdog's exits
(``herald.ops.watchdog``); neither of those knows of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from herald import clock
from herald.ops.heartbeat import live_workers, queued_messages
from herald.ops.watchdog import recent_exits
from herald.state.redisconn import MEMORY_WARNING, memory_use


@dataclass
class Health:
    """The answer of ``/healthz``: healthy or not, and what is wrong."""

    redis: str
    workers: int
    queued: int
    last_consumed_seconds_ago: float | None
    problems: list[str] = field(default_factory=list)
    watchdog_exits: int = 0
    """Worker processes the consumption watchdog made exit in the last hour."""
    last_watchdog_exit: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Nothing is wrong."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The JSON body."""
        return {
            "status": "ok" if self.ok else "unhealthy",
            "redis": self.redis,
            "workers": self.workers,
            "queued": self.queued,
            "last_consumed_seconds_ago": self.last_consumed_seconds_ago,
            "problems": self.problems,
            "watchdog_exits_last_hour": self.watchdog_exits,
            "last_watchdog_exit": self.last_watchdog_exit,
        }


WATCHDOG_WINDOW = 3600.0
"""How far back ``/healthz`` counts the consumption watchdog's exits."""


def check_health(client: redis.Redis, *, stall: float) -> Health:
    """Redis reachable, workers alive, and consuming when there is work to consume.

    Besides the system as a whole, each process's watchdog view counts: a process with work
    waiting in its own queues and none taken for ``stall`` seconds is a problem even while
    other processes consume. Exits of stalled processes in the last hour are reported.
    """
    try:
        client.ping()
        beats = live_workers(client)
        queued = sum(queued_messages(client).values())
        exits = recent_exits(client, clock.time() - WATCHDOG_WINDOW)
        used, limit = memory_use(client)
    except redis.RedisError as exc:
        return Health(f"unreachable: {type(exc).__name__}", 0, 0, None, ["Redis is not reachable"])
    now = clock.time()
    latest = max((b.active_at for b in beats), default=None)
    ago = round(max(0.0, now - latest), 1) if latest is not None else None
    health = Health("ok", len(beats), queued, ago, watchdog_exits=len(exits))
    if exits:
        health.last_watchdog_exit = exits[0].as_dict()
    if limit and used >= MEMORY_WARNING * limit:
        health.problems.append(
            f"Redis uses {used / limit:.0%} of its maxmemory ({used // 2**20} of {limit // 2**20} MiB): "
            "at 100% it refuses every write (intake, claims, outcomes); free memory or raise maxmemory"
        )
    if not beats:
        health.problems.append("no worker process is alive (no live heartbeat in herald:workers)")
    elif queued and ago is not None and ago > stall:
        health.problems.append(
            f"{queued} messages wait in the queues and no worker has taken one for {ago:.0f} s "
            f"(more than HERALD_HEALTH_STALL, {stall:g} s)"
        )
    for beat in beats:
        if beat.waiting_since is not None and now - beat.waiting_since > stall:
            health.problems.append(
                f"worker process {beat.host}:{beat.pid} ({beat.node or 'no node name'}) has taken "
                f"nothing for {now - beat.waiting_since:.0f} s while {beat.queued or 0} messages wait "
                f"in its queues (more than HERALD_HEALTH_STALL, {stall:g} s; its watchdog makes it "
                "exit after HERALD_WATCHDOG_STALL)"
            )
    return health
