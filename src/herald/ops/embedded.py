"""An embedded redis-server: what ``herald run`` and the test suites start for themselves."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from herald.holds.suppression import COMPACT_VALUE


class EmbeddedRedisError(RuntimeError):
    """redis-server is missing or did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """True when ``port`` on 127.0.0.1 can be bound."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_redis(port: int, data: Path, log: Path, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:``port`` with AOF in ``data``; wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise EmbeddedRedisError(
            "redis-server is not installed. Install Debian's package "
            "(apt-get install redis-server), or use ./run.sh or ./test.sh, which do it for you."
        )
    data.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    args += ["--daemonize", "no", "--maxmemory-policy", "noeviction"]
    args += ["--hash-max-listpack-value", str(COMPACT_VALUE)]  # holds stay compact
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise EmbeddedRedisError(f"redis-server did not start on port {port}; see {log}") from None
            time.sleep(0.05)
        finally:
            client.close()


class EmbeddedRedis:
    """One redis-server (AOF on) on a fixed port and data directory: stopped, killed and
    started again on the same ones, as a restart after a crash or a maintenance would.

    Parameters: ``port`` (127.0.0.1), ``data`` (its AOF), ``log`` (its output).
    """

    def __init__(self, port: int, data: Path, log: Path) -> None:
        self.port, self.data, self.log = port, data, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it; :class:`EmbeddedRedisError` when it cannot."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = start_redis(self.port, self.data, self.log)

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM): Redis writes its AOF and exits."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def kill(self, *, empty: bool = False) -> None:
        """SIGKILL (what it had not yet written to its AOF is lost); ``empty``: its data
        directory goes too, so it comes back with nothing."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if empty:
            shutil.rmtree(self.data, ignore_errors=True)
