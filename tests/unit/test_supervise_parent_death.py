"""A supervisor killed outright takes its worker processes with it (Linux): each gets SIGTERM,
its warm shutdown, so a supervisor started again never runs beside orphans of the old one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import wait_until

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's"
)

CHILD = """
import os, signal, sys
from pathlib import Path
out = Path(sys.argv[1])
def stop(signum, frame):
    out.write_text(f"{os.getpid()} stopped by {signum}")
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
out.write_text(f"{os.getpid()} running")
signal.pause()
"""

SUPERVISOR = """
import sys
from herald.ops.supervise import Supervisor
Supervisor([[sys.executable, "-c", sys.argv[1], sys.argv[2]]]).run()
"""


def test_a_worker_process_stops_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "child"
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, CHILD, str(out)])
    try:
        wait_until(lambda: out.exists() and "running" in out.read_text(), 30, "the worker process to run")
        child = int(out.read_text().split()[0])
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
        wait_until(lambda: "stopped" in out.read_text(), 10, "the worker process to get its stop")
        assert out.read_text() == f"{child} stopped by {int(signal.SIGTERM)}"
        wait_until(lambda: not _alive(child), 10, "the worker process to exit")
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its new parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
