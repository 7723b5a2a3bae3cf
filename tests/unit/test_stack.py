"""The local stack's process handling (herald.ops.stack), with real processes and no server:
what ``herald run``, the suites and the bench rely on to leave nothing running behind them."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import psutil
import pytest

from herald.ops.stack import LocalStack, StackError
from tests.harness import wait_until

DEAF = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)
"""A process that ignores SIGTERM (a hung shutdown)."""
PARENT = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
)
"""A process that starts a child and exits at once, leaving it an orphan in its process group."""


def test_a_process_that_ignores_sigterm_is_killed_and_named(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    proc = stack.run("deaf", [sys.executable, "-c", DEAF])
    wait_until(lambda: "up" in stack.log("deaf"), 30, "the process to ignore SIGTERM")
    killed = stack.stop(grace=0.5)
    assert killed == ["deaf"]
    assert proc.poll() == -signal.SIGKILL
    assert stack.procs == {}


def test_an_orphan_left_in_the_process_group_is_stopped_too(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    stack.run("parent", [sys.executable, "-c", PARENT])
    stack.procs["parent"].wait(timeout=30)
    orphan = psutil.Process(int(stack.log("parent").split()[0]))
    assert orphan.is_running()
    assert stack.stop(grace=5) == []  # the parent had exited already: nothing to name
    orphan.wait(timeout=30)
    assert not psutil.pid_exists(orphan.pid) or orphan.status() == psutil.STATUS_ZOMBIE


def test_a_name_used_again_names_the_new_process_and_both_are_stopped(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    first = stack.run("worker", [sys.executable, "-c", "import time; time.sleep(600)"])
    second = stack.run("worker", [sys.executable, "-c", "import time; time.sleep(600)"])
    assert stack.procs["worker"] is second
    stack.stop(grace=30)
    assert first.poll() is not None
    assert second.poll() is not None


def test_waiting_for_workers_names_the_process_that_exited_with_its_log(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    stack.run("worker", [sys.executable, "-c", "raise SystemExit('no broker configured')"])
    stack.procs["worker"].wait(timeout=30)
    with pytest.raises(StackError, match="herald worker exited: no broker configured"):
        stack.wait_ready(1, timeout=30)
    stack.stop()


def test_the_environment_puts_a_process_on_the_stack(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    env = stack.configure({"HERALD_SEND_WINDOW": "00:00-24:00"})
    stack.run("env", [sys.executable, "-c", "import os; print(os.environ['HERALD_OUTBOX_DIR'])"])
    assert stack.procs["env"].wait(timeout=30) == 0
    assert stack.log("env").strip() == str(tmp_path.resolve() / "outbox")
    assert env["HERALD_LEDGER_URL"] == f"sqlite:///{tmp_path.resolve() / 'ledger.sqlite3'}"
    assert env["HERALD_SEND_WINDOW"] == "00:00-24:00"
    assert "HERALD_REDIS_URL" not in stack.local_env()  # no redis-server of its own yet
    with pytest.raises(StackError, match="redis-server was not started"):
        _ = stack.url
