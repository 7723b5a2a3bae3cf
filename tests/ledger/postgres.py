"""A throwaway PostgreSQL server for the ledger's tests: Debian's binaries, a free port, a
temporary data and socket directory, removed after. PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` user (``runuser``)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from herald.ops.embedded import free_port

START_TIMEOUT = 60.0


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (newest Debian version first), if any."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path))

    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if os.access(f"{directory}/initdb", os.X_OK) and os.access(f"{directory}/postgres", os.X_OK):
            return Path(directory)
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return Path(initdb).parent
    return None


class PostgresServer:
    """One server; ``url(database)`` for SQLAlchemy, ``create_database``/``drop_database``."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "postgres.log"

    def _as_server_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError(
                "running as root, and runuser (util-linux) is missing: cannot start PostgreSQL"
            )
        shutil.chown(self.root, "postgres", "postgres")
        return [runuser, "-u", "postgres", "--"]

    def start(self) -> None:
        prefix = self._as_server_user()
        data, sockets = self.root / "data", self.root / "sockets"
        subprocess.run([*prefix, "mkdir", "-p", str(data), str(sockets)], check=True)
        init = [*prefix, str(self.binaries / "initdb"), "-D", str(data), "-U", "postgres"]
        init += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        done = subprocess.run(init, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        server = [*prefix, str(self.binaries / "postgres"), "-D", str(data), "-p", str(self.port)]
        server += ["-k", str(sockets), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        server += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(server, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"PostgreSQL did not start: {self.log.read_text(errors='replace')[-2000:]}"
                    ) from exc
                time.sleep(0.1)

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), then remove every file."""
        pid_file = self.root / "data" / "postmaster.pid"
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            except (OSError, ValueError, IndexError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
