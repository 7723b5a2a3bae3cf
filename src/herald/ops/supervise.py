"""Keep N worker processes running: ``herald worker --processes N``.

Celery's threads pool keeps one Python process on one core; herald runs one Celery worker
process per core instead of a prefork pool (each process feeds its own event loop from many
threads, so one process keeps many deliveries in flight even when they arrive one at a time).
The supervisor starts them, restarts one that exits on its own (a crash, or a worker that
stopped consuming and exited on purpose) with a growing delay, and passes a stop on: the first
SIGTERM or SIGINT is a warm shutdown (running batches finish), a second one a cold one.

A supervisor that dies without passing a stop on (SIGKILL, a crash) takes its processes with
it: on Linux the kernel sends each one SIGTERM (a warm shutdown) when its supervisor is gone,
so a supervisor started again never runs beside orphans of the old one, still consuming with
no one to restart or stop them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("herald.ops.supervise")

QUICK_EXIT = 60.0  # seconds: a process that dies sooner than this is restarted more slowly
MAX_DELAY = 30.0
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def stop_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when this process dies (None
    where prctl is not available)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:  # between fork and exec: only the prepared C call, no imports
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the supervisor died before the request took effect
            os._exit(1)

    return in_child


class Supervisor:
    """Runs one process per command and restarts any that exits while not stopping.

    Parameters: ``commands`` (one argv per process), ``env``, ``clock`` / ``sleep`` for
    tests, and ``on_exit``, called with the pid of each process that exits (before it is
    restarted). Hook: :meth:`run` blocks until every process has exited after a stop signal, and
    returns 0 when they all exited cleanly.
    """

    def __init__(
        self,
        commands: list[list[str]],
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.commands = commands
        self.env = env
        self.on_exit = on_exit
        self.clock = clock
        self.sleep = sleep
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(commands)
        self.started: list[float] = [0.0] * len(commands)
        self.delays: list[float] = [1.0] * len(commands)
        self.reported: list[bool] = [False] * len(commands)
        self.stops = 0
        self.restarts = 0
        self._preexec = stop_with_parent()

    def start(self, index: int) -> None:
        self.procs[index] = subprocess.Popen(self.commands[index], env=self.env, preexec_fn=self._preexec)
        self.started[index] = self.clock()
        self.reported[index] = False

    def alive(self) -> int:
        """How many processes are running now."""
        return sum(1 for proc in self.procs if proc is not None and proc.returncode is None)

    def stop(self, signum: int, frame: FrameType | None = None) -> None:
        """First call: warm shutdown (SIGTERM) of every process; later calls: cold (SIGQUIT)."""
        self.stops += 1
        forward = signal.SIGTERM if self.stops == 1 else signal.SIGQUIT
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(forward)

    def run(self) -> int:
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(len(self.commands)):
                self.start(index)
            return self._watch()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _watch(self) -> int:
        worst = 0
        while True:
            alive = False
            for index, proc in enumerate(self.procs):
                if proc is None:
                    continue
                code = proc.poll()
                if code is None:
                    alive = True
                    continue
                if self.on_exit is not None and not self.reported[index]:
                    self.reported[index] = True
                    self.on_exit(proc.pid)
                if self.stops:
                    worst = worst or code
                    self.procs[index] = None
                    continue
                self._restart(index, code)
                alive = True
            if not alive:
                return worst
            self.sleep(0.5)

    def _restart(self, index: int, code: int) -> None:
        ran = self.clock() - self.started[index]
        delay = self.delays[index] if ran < QUICK_EXIT else 1.0
        log.error(
            "worker process %d exited with %s after %.0f s; restarting in %.0f s", index, code, ran, delay
        )
        self.sleep(delay)
        self.delays[index] = min(MAX_DELAY, delay * 2)
        self.restarts += 1
        if not self.stops:
            self.start(index)


def numbered(argv: list[str], index: int, count: int) -> list[str]:
    """Celery options for process ``index`` of ``count``: its node name made unique."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("-n", "--hostname") and i + 1 < len(out):
            out[i + 1] = _suffix(out[i + 1], index, count)
            return out
        if arg.startswith("--hostname="):
            out[i] = "--hostname=" + _suffix(arg.split("=", 1)[1], index, count)
            return out
    return [*out, "-n", _suffix("herald@%h", index, count)]


def _suffix(name: str, index: int, count: int) -> str:
    if count == 1:
        return name
    node, at, host = name.partition("@")
    return f"{node}-{index + 1}{at}{host}"
