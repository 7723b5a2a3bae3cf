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
Each process's consumption watchdog (:mod:`herald.ops.watchdog`) adds what it sees to the hash
(``queued`` in the process's own queues, ``waiting_since``, ``watched_at``), so that a single
stalled process shows too, and its exits are counted from the ``herald:watchdog`` stream.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

import redis

from herald import clock
from herald.state import store
from herald.state.queues import ALL_QUEUES
from herald.state.redisconn import redis_client

log = logging.getLogger("herald.ops.heartbeat")

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
