"""Worker heartbeats, and the health of the system as ``GET /healthz`` reports it.

Each worker process keeps one Redis hash, ``herald:workers:<host>:<pid>``, refreshed every
``HERALD_HEARTBEAT_INTERVAL`` seconds by a daemon thread and expiring three intervals after the
last refresh: a process that died, or hangs, disappears by itself. The set ``herald:workers``
names the hashes, so a health check reads them without scanning the keyspace. Besides "alive" it records
when the process last started or finished a task, because a worker can stay alive and consume
nothing (after a broker reconnect, Celery workers on Redis have been seen to do just that).

The system is healthy when Redis answers, at least one worker is alive, and, if messages wait
in herald's queues, some worker took or finished one within ``HERALD_HEALTH_STALL`` seconds.
An idle system with empty queues is healthy however long ago its workers last consumed.
Each process's consumption watchdog (:mod:`herald.watchdog`) adds what it sees to the hash
(``queued`` in the process's own queues, ``waiting_since``, ``watched_at``), so that a single
stalled process shows too, and its exits are counted from the ``herald:watchdog`` stream.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import redis

from herald import clock, store
from herald.queues import ALL_QUEUES
from herald.redisconn import MEMORY_WARNING, memory_use, redis_client

log = logging.getLogger("herald.heartbeat")

WORKERS = store.PREFIX + "workers:"
INDEX = store.PREFIX + "workers"
"""The set of heartbeat keys, so that health checks never SCAN the keyspace; a member whose
hash has expired is a dead process, and is removed by the next reader."""
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
"""The Redis lists kombu keeps per queue: the queue's own and one per priority step."""


def worker_key(host: str, pid: int) -> str:
    """The heartbeat hash of one worker process."""
    return f"{WORKERS}{host}:{pid}"


class Heartbeat:
    """One worker process's heartbeat: a daemon thread refreshing its Redis hash.

    Parameters: ``client`` (a synchronous Redis client of its own), ``interval`` (seconds between
    refreshes; the hash expires after three), ``node`` (the Celery node name, for people).
    Hooks: :meth:`touch` on every task (cheap: no Redis call), :meth:`start` and :meth:`stop`.
    """

    def __init__(self, client: redis.Redis, interval: float, *, node: str = "") -> None:
        self.redis = client
        self.interval = interval
        self.node = node
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.key = worker_key(self.host, self.pid)
        self.started_at = clock.time()
        self.consumed_at = 0.0
        self.tasks = 0
        self.extra: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def touch(self) -> None:
        """Note that this process just took or finished a task."""
        with self._lock:
            self.consumed_at = clock.time()
            self.tasks += 1

    def annotate(self, **fields: str) -> None:
        """Fields the next beats add to the hash (the consumption watchdog's view of the queues)."""
        with self._lock:
            self.extra.update(fields)

    def beat(self) -> None:
        """Write the heartbeat now (the thread calls this every interval)."""
        with self._lock:
            fields = {
                **self.extra,
                "host": self.host,
                "pid": str(self.pid),
                "node": self.node,
                "started_at": f"{self.started_at:.3f}",
                "alive_at": f"{clock.time():.3f}",
                "consumed_at": f"{self.consumed_at:.3f}" if self.consumed_at else "",
                "tasks": str(self.tasks),
            }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(self.key, max(1, round(self.interval * 3)))
            pipe.sadd(INDEX, self.key)
            pipe.execute()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except redis.RedisError as exc:  # the next beat tries again; the hash may expire meanwhile
                log.warning("heartbeat not written: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Start refreshing in a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="herald-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop refreshing and remove the hash: this process no longer consumes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.key)
                pipe.srem(INDEX, self.key)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("heartbeat not removed (it expires by itself): %s", exc)


_process: Heartbeat | None = None


def start_process_heartbeat(redis_url: str, interval: float, *, node: str = "") -> Heartbeat:
    """Start this process's heartbeat (a worker calls this when it is ready to consume)."""
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = Heartbeat(redis_client(redis_url, socket_timeout=5), interval, node=node)
        _process.start()
    return _process


def touch() -> None:
    """Note a task in this process's heartbeat, if it has one."""
    if _process is not None:
        _process.touch()


def annotate(**fields: str) -> None:
    """Add fields to this process's heartbeat, if it has one (see :meth:`Heartbeat.annotate`)."""
    if _process is not None:
        _process.annotate(**fields)


def stop_process_heartbeat() -> None:
    """Stop this process's heartbeat and remove its hash (a worker shutting down)."""
    global _process
    if _process is not None:
        _process.stop()
        _process = None


@dataclass(frozen=True)
class WorkerBeat:
    """A live worker process as its heartbeat describes it."""

    host: str
    pid: int
    node: str
    started_at: float
    alive_at: float
    consumed_at: float | None
    tasks: int
    queued: int | None = None
    """Messages waiting in the queues this process consumes (its watchdog's last count)."""
    waiting_since: float | None = None
    """Since when they have waited while the process took none (its watchdog's view)."""

    @property
    def active_at(self) -> float:
        """When it last showed it consumes: its last task, or its start."""
        return max(self.consumed_at or 0.0, self.started_at)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def live_workers(client: redis.Redis) -> list[WorkerBeat]:
    """Every worker process whose heartbeat has not expired."""
    keys = sorted(client.smembers(INDEX))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        answers = pipe.execute()
    beats: list[WorkerBeat] = []
    dead = [key for key, raw in zip(keys, answers, strict=True) if not raw]
    if dead:  # their hashes expired: those processes died or hung
        client.srem(INDEX, *dead)
    for raw in answers:
        h = store.decode_hash(raw)
        if not h:
            continue
        beats.append(
            WorkerBeat(
                host=h.get("host", ""),
                pid=int(h.get("pid") or 0),
                node=h.get("node", ""),
                started_at=_float(h.get("started_at")) or 0.0,
                alive_at=_float(h.get("alive_at")) or 0.0,
                consumed_at=_float(h.get("consumed_at")),
                tasks=int(h.get("tasks") or 0),
                queued=int(h["queued"]) if h.get("queued", "").isdigit() else None,
                waiting_since=_float(h.get("waiting_since")),
            )
        )
    return sorted(beats, key=lambda b: (b.host, b.pid))


def queued_messages(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each of herald's queues (kombu's lists, every priority step)."""
    with client.pipeline(transaction=False) as pipe:
        for queue in ALL_QUEUES:
            for suffix in PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
    steps = len(PRIORITY_SUFFIXES)
    return {q: sum(lengths[i * steps : (i + 1) * steps]) for i, q in enumerate(ALL_QUEUES)}


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
    from herald.watchdog import recent_exits

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
