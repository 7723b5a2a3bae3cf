"""The consumption watchdog: a worker process that has work waiting and consumes nothing exits.

Celery workers on Redis have been seen to stop consuming after a broker connection reset
without exiting (celery#10205, #10302): alive, heartbeating, and deaf to their queues. Each
worker process runs this watchdog on a daemon thread. Every ``HERALD_HEARTBEAT_INTERVAL``
seconds it counts the messages waiting in the queues the process consumes (kombu's Redis lists,
every priority step) and decides with :class:`StallDetector`:

- a process with a task in progress is busy, not stalled (a long batch is consuming);
- an idle process with empty queues is fine, however long it idles;
- a process whose queues have held messages for ``HERALD_WATCHDOG_STALL`` seconds while it
  took none (counted from when it was first seen waiting, its last task start or end, or its
  start, whichever is latest), at three looks in a row, has stalled.

A stalled process logs why, appends an entry to the ``herald:watchdog`` stream (``/healthz``
reports recent ones), asks Celery for a warm stop with exit code :data:`EXIT_STALLED` and, if
the process is still there :data:`STOP_GRACE` seconds later (a wedged broker connection can
hang the shutdown too), leaves at once with that code. Its supervisor (``herald worker``, or
systemd / the container runtime for a single process) starts a fresh one, which connects
anew. Nothing is lost: a message it had taken and not acknowledged comes back after the
visibility timeout, and a lost one is re-published by ``herald reconcile``.

When Redis cannot be read the watchdog decides nothing (and starts counting afresh once it
can): a Redis outage is not a stalled consumer. ``HERALD_WATCHDOG_STALL=0`` turns it off.
The watchdog watches the queues the process started with (``-Q``); a queue cancelled later
through Celery's remote control still counts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from herald import clock
from herald.config import Settings
from herald.ops import heartbeat
from herald.ops.metrics import broker_lists
from herald.state import store
from herald.state.redisconn import settings_client

log = logging.getLogger("herald.ops.watchdog")

EXITS = store.PREFIX + "watchdog"
"""Stream of watchdog exits (host, pid, node, queues, queued, idle seconds, at), trimmed."""
EXITS_MAXLEN = 1000
EXIT_STALLED = 75
"""The exit code of a process that stopped consuming (EX_TEMPFAIL: start it again)."""
STOP_GRACE = 15.0
"""Seconds a warm stop may take before the process leaves at once."""


@dataclass(frozen=True)
class Verdict:
    """One look at a process: how long work has waited for it untouched, and whether that is a stall."""

    stalled: bool
    queued: int
    idle_since: float | None
    """Since when messages have waited while the process took none (None: it is not waiting)."""
    idle_seconds: float


class StallDetector:
    """The watchdog's decision, from observations (no I/O, time passed in).

    Parameters: ``stall`` (seconds; 0 turns the detector off), ``started_at`` (when the
    process became ready to consume) and ``confirm``: how many looks in a row must find the
    stall (a clock that jumps forward makes one look see a long wait; a process that consumes
    between two looks is not stalled). Call :meth:`observe` at each look.
    """

    def __init__(self, stall: float, started_at: float, confirm: int = 3) -> None:
        self.stall = stall
        self.started_at = started_at
        self.confirm = max(1, confirm)
        self.waiting_since: float | None = None
        self.strikes = 0

    def observe(self, now: float, queued: int | None, consumed_at: float, busy: bool) -> Verdict:
        """Decide from ``queued`` (messages waiting in the process's queues; None when Redis
        could not be read), ``consumed_at`` (its last task start or end, 0 for none) and
        ``busy`` (a task is in progress)."""
        if queued is None or queued <= 0 or busy:
            self.waiting_since = None
            self.strikes = 0
            return Verdict(False, queued or 0, None, 0.0)
        if self.waiting_since is None:
            self.waiting_since = now
        idle_since = max(self.waiting_since, consumed_at, self.started_at)
        idle = max(0.0, now - idle_since)
        self.strikes = self.strikes + 1 if self.stall > 0 and idle >= self.stall else 0
        return Verdict(self.strikes >= self.confirm, queued, idle_since, idle)


class TaskTracker:
    """Which tasks this process has in progress, and when it last started or finished one.

    Fed by Celery's ``task_prerun`` and ``task_postrun`` signals. A task in progress for longer
    than ``hung_after`` seconds no longer counts as busy (a task that never ends must not keep
    the watchdog quiet for ever).
    """

    def __init__(self, hung_after: float, now: Callable[[], float] = clock.time) -> None:
        self.hung_after = hung_after
        self.now = now
        self.consumed_at = 0.0
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()

    def started(self, task_id: str) -> None:
        """A task started."""
        with self._lock:
            self.consumed_at = self.now()
            self._running[task_id] = self.consumed_at

    def finished(self, task_id: str) -> None:
        """A task ended (done, failed or rejected)."""
        with self._lock:
            self.consumed_at = self.now()
            self._running.pop(task_id, None)

    def busy(self) -> bool:
        """Whether a task is in progress (and not hung)."""
        now = self.now()
        with self._lock:
            return any(now - began < self.hung_after for began in self._running.values())


def queued_in(client: redis.Redis, queues: Iterable[str]) -> int:
    """Messages waiting in ``queues``: kombu's list of each, with its priority sub-lists."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for name in broker_lists(queue):
                pipe.llen(name)
        return sum(int(n) for n in pipe.execute())


class Watchdog:
    """The consumption watchdog of one worker process (see the module's description).

    Parameters: ``settings``; ``queues``, the queues the process consumes; ``node``, its Celery
    node name (for people); ``client``, a synchronous Redis client with short timeouts;
    ``tracker``, fed by the task signals; ``leave``, called with the exit code when the process
    must go (default: a warm stop, then :func:`os._exit`).
    """

    def __init__(
        self,
        settings: Settings,
        queues: list[str],
        *,
        node: str = "",
        client: redis.Redis | None = None,
        tracker: TaskTracker | None = None,
        leave: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.queues = list(queues)
        self.node = node
        self.redis = client or settings_client(settings, socket_timeout=5, socket_connect_timeout=5)
        self.tracker = tracker or TaskTracker(settings.visibility_timeout / 4 + 60)
        self.detector = StallDetector(settings.watchdog_stall, clock.time())
        self.leave = leave or _leave
        self.interval = settings.heartbeat_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> Verdict:
        """Look once: count the waiting messages, decide, and tell the heartbeat what was seen."""
        try:
            queued: int | None = queued_in(self.redis, self.queues)
        except (redis.RedisError, OSError) as exc:
            log.debug("watchdog cannot read the queues: %s", exc)
            queued = None
        verdict = self.detector.observe(clock.time(), queued, self.tracker.consumed_at, self.tracker.busy())
        heartbeat.annotate(
            watched_at=f"{clock.time():.3f}",
            queued="" if queued is None else str(queued),
            waiting_since="" if verdict.idle_since is None else f"{verdict.idle_since:.3f}",
        )
        return verdict

    def stalled(self, verdict: Verdict) -> None:
        """Record why this process goes, then make it go with :data:`EXIT_STALLED`."""
        log.error(
            "consumption watchdog: %d message(s) wait in %s and this process has taken none for "
            "%.0f s (HERALD_WATCHDOG_STALL=%g s); exiting with %d so that its supervisor starts a "
            "fresh one",
            verdict.queued,
            ",".join(self.queues),
            verdict.idle_seconds,
            self.settings.watchdog_stall,
            EXIT_STALLED,
        )
        entry = {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "node": self.node,
            "queues": ",".join(self.queues),
            "queued": str(verdict.queued),
            "idle_seconds": f"{verdict.idle_seconds:.0f}",
            "at": f"{clock.time():.3f}",
        }
        try:
            self.redis.xadd(EXITS, entry, maxlen=EXITS_MAXLEN, approximate=True)  # type: ignore[arg-type]
        except (redis.RedisError, OSError) as exc:
            log.warning("watchdog exit not recorded in %s: %s", EXITS, exc)
        self.leave(EXIT_STALLED)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                verdict = self.check()
            except Exception:  # the watchdog must outlive its own surprises
                log.exception("consumption watchdog: a look failed; looking again")
                continue
            if verdict.stalled and not self._stop.is_set():
                self.stalled(verdict)
                return

    def start(self) -> None:
        """Start watching on a daemon thread (once); does nothing when HERALD_WATCHDOG_STALL is 0."""
        if self._thread is None and self.settings.watchdog_stall > 0:
            self._thread = threading.Thread(target=self._run, name="herald-watchdog", daemon=True)
            self._thread.start()
            log.info(
                "consumption watchdog on %s: exit after %g s with work waiting and none taken",
                ",".join(self.queues),
                self.settings.watchdog_stall,
            )

    def stop(self) -> None:
        """Stop watching (a warm shutdown stops consuming on purpose)."""
        self._stop.set()


def _leave(code: int) -> None:
    """A warm stop with ``code`` (Celery's main loop raises it), then a hard exit if it hangs."""
    from celery.worker import state

    state.should_stop = code  # type: ignore[assignment]  # Celery reads it as the exit code
    timer = threading.Timer(STOP_GRACE, _hard_exit, args=(code,))
    timer.daemon = True
    timer.start()


def _hard_exit(code: int) -> None:
    log.error("the warm stop did not finish within %.0f s; leaving now with %d", STOP_GRACE, code)
    logging.shutdown()
    os._exit(code)


@dataclass(frozen=True)
class WatchdogExit:
    """One exit of a stalled worker process, as ``herald:watchdog`` records it."""

    worker: str
    node: str
    queues: str
    queued: int
    idle_seconds: float
    at: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON form ``/healthz`` shows."""
        return {
            "worker": self.worker,
            "node": self.node,
            "queues": self.queues,
            "queued": self.queued,
            "idle_seconds": self.idle_seconds,
            "at": store.iso(self.at),
        }


def recent_exits(client: redis.Redis, since: float, limit: int = 100) -> list[WatchdogExit]:
    """Watchdog exits recorded at or after ``since`` (epoch seconds), newest first."""
    found: list[WatchdogExit] = []
    for _, raw in client.xrevrange(EXITS, count=limit) or []:
        h = store.decode_hash(raw or {})
        try:
            at = float(h.get("at") or 0)
            entry = WatchdogExit(
                worker=f"{h.get('host', '')}:{h.get('pid', '')}",
                node=h.get("node", ""),
                queues=h.get("queues", ""),
                queued=int(h.get("queued") or 0),
                idle_seconds=float(h.get("idle_seconds") or 0),
                at=at,
            )
        except ValueError:
            continue
        if at < since:
            break
        found.append(entry)
    return found


_process: Watchdog | None = None
_tracker: TaskTracker | None = None


def process_tracker(settings: Settings) -> TaskTracker:
    """This process's task tracker (made on first use)."""
    global _tracker
    if _tracker is None:
        _tracker = TaskTracker(settings.visibility_timeout / 4 + 60)
    return _tracker


def start_process_watchdog(settings: Settings, queues: list[str], *, node: str = "") -> Watchdog:
    """Start this process's watchdog on ``queues`` (a worker calls this when it is ready)."""
    global _process
    if _process is None:
        _process = Watchdog(settings, queues, node=node, tracker=process_tracker(settings))
        _process.start()
    return _process


def task_started(settings: Settings, task_id: str) -> None:
    """Note a task start in this process's tracker."""
    process_tracker(settings).started(task_id)


def task_finished(settings: Settings, task_id: str) -> None:
    """Note a task end in this process's tracker."""
    process_tracker(settings).finished(task_id)


def stop_process_watchdog() -> None:
    """Stop this process's watchdog (a warm shutdown)."""
    if _process is not None:
        _process.stop()
