"""The local stack: an embedded redis-server and herald's processes on one home directory.

The one launcher behind ``herald run``, the integration suites, the fault suite and the bench:
each starts its redis-server and its processes through :class:`LocalStack` and stops them with
it, so a process left running, an orphan of a killed supervisor or a log in an unexpected place
is fixed once for all four.

Layout of ``home``: ``redis/`` (the AOF), ``log/<name>.log`` (one per process, redis-server's
too), ``outbox/`` and ``ledger.sqlite3`` (see :meth:`LocalStack.local_env`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import redis

from herald.holds.suppression import SuppressionStore
from herald.ops.embedded import EmbeddedRedis, free_port

HERALD = (sys.executable, "-m", "herald.cli")
"""How a process of this installation runs ``herald``."""
STOP_GRACE = 60.0
"""Seconds :meth:`LocalStack.stop` waits for the processes after SIGTERM before it kills what
is left: more than a worker's warm stop (``Settings.stop_within``, 45 s by default)."""
LOOK = 0.05
"""Seconds between looks while waiting for a process to be ready or gone."""


class StackError(RuntimeError):
    """A process of the stack exited, or did not get ready in time."""


class LocalStack:
    """An embedded redis-server and herald processes on ``home`` (see the module docstring).

    Parameters: ``home`` (created if missing), ``cwd`` (the processes' working directory, the
    current one by default). Processes get the environment in :attr:`env` at the time they
    are spawned; set it (from :meth:`local_env`) after :meth:`start_redis`.
    """

    def __init__(self, home: Path, *, cwd: Path | None = None) -> None:
        self.home = home.resolve()
        self.logs = self.home / "log"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        self.env: dict[str, str] = dict(os.environ)
        self.redis: EmbeddedRedis | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        """The latest process spawned under each name."""
        self._spawned: list[subprocess.Popen[bytes]] = []  # every one, in order: all are stopped

    # -- redis-server ----------------------------------------------------------------------

    def start_redis(self, port: int | None = None, *, initialize: str = "") -> str:
        """Start redis-server on ``port`` (a free one by default) with its data in
        ``home/redis``; returns its URL. ``initialize``: mark the hold store initialised, by
        that name (a new store's guards hold everything back until it is)."""
        self.redis = EmbeddedRedis(port or free_port(), self.home / "redis", self.logs / "redis.log")
        self.redis.start()
        if initialize:
            client = redis.Redis.from_url(self.redis.url)
            try:
                SuppressionStore(client).initialize(initialize)
            finally:
                client.close()
        return self.redis.url

    @property
    def url(self) -> str:
        """The embedded redis-server's URL (database 0)."""
        if self.redis is None:
            raise StackError("redis-server was not started")
        return self.redis.url

    def local_env(self, redis_url: str | None = None) -> dict[str, str]:
        """The settings that put a herald process on this stack: its Redis (``redis_url``, or
        the embedded one once started), and the outbox and ledger under ``home``; unbuffered
        output, so the logs are current."""
        env = {
            "HERALD_OUTBOX_DIR": str(self.home / "outbox"),
            "HERALD_LEDGER_URL": f"sqlite:///{self.home / 'ledger.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
        }
        url = redis_url or (self.redis.url if self.redis is not None else "")
        if url:
            env["HERALD_REDIS_URL"] = url
        return env

    def configure(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Set :attr:`env` to this process's environment, :meth:`local_env` and ``overrides``
        (later wins); returns it."""
        self.env = {**os.environ, **self.local_env(), **(overrides or {})}
        return self.env

    # -- processes -------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        """Where the process ``name`` writes."""
        return self.logs / f"{name}.log"

    def log(self, name: str) -> str:
        """What the process ``name`` wrote so far (every run under that name)."""
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def spawn(
        self, name: str, args: list[str], *, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``herald <args>`` as ``name`` (see :meth:`run`)."""
        return self.run(name, [*HERALD, *args], env=env)

    def run(
        self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as ``name``: in its own session (so the process group it leads, its
        children included, can be stopped as one), with :attr:`env` (or ``env``), appending to
        ``log/<name>.log``. A name used again names the new process; the old one is still
        stopped by :meth:`stop`."""
        with self.log_path(name).open("ab") as log:
            proc = subprocess.Popen(
                argv,
                env=dict(env if env is not None else self.env),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        self._spawned.append(proc)
        return proc

    def exited(self) -> list[str]:
        """The names whose latest process has exited."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def ready_workers(self, name: str = "worker") -> int:
        """How many Celery worker processes under ``name`` started consuming (restarts too)."""
        return self.log(name).count(" ready.")

    def wait_ready(self, workers: int, timeout: float, name: str = "worker") -> None:
        """Wait until ``workers`` Celery worker processes under ``name`` are consuming;
        :class:`StackError` (with the end of the log) if a process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while self.ready_workers(name) < workers:
            for gone in self.exited():
                raise StackError(f"herald {gone} exited: {self.log(gone)[-3000:]}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{workers} worker processes not ready after {timeout:.0f} s: {self.log(name)[-3000:]}"
                )
            time.sleep(LOOK)

    def stop_process(
        self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_GRACE
    ) -> int:
        """Send ``sig`` to the process ``name`` and wait until it exits; its exit code."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def stop(self, grace: float = STOP_GRACE) -> list[str]:
        """Stop every process spawned: SIGTERM to each (the latest first), up to ``grace``
        seconds for all of them to exit, then SIGKILL to every process group left (orphans a
        killed supervisor left behind included). Returns the names that had to be killed."""
        names = {id(proc): name for name, proc in self.procs.items()}
        for proc in reversed(self._spawned):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        killed = []
        for proc in reversed(self._spawned):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                killed.append(names.get(id(proc), str(proc.args)))
        for proc in self._spawned:  # the group each led: children it left behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._spawned:
            proc.wait()
        self._spawned.clear()
        self.procs.clear()
        return killed

    def close(self, grace: float = STOP_GRACE) -> list[str]:
        """:meth:`stop`, then redis-server last (a clean shutdown); the names killed."""
        killed = self.stop(grace)
        if self.redis is not None:
            self.redis.stop()
        return killed
