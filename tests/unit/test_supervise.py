"""herald worker's supervisor: restarts a worker process that dies, names each process."""

from __future__ import annotations

import signal
import sys

from herald.ops.supervise import Supervisor, numbered


def test_a_process_that_dies_is_restarted_with_a_growing_delay() -> None:
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        if seconds != 0.5:  # 0.5 is the poll interval; the others are restart delays
            delays.append(seconds)
        if len(delays) == 3:
            supervisor.stop(signal.SIGTERM)

    supervisor = Supervisor([[sys.executable, "-c", "raise SystemExit(3)"]], sleep=sleep)
    assert supervisor.run() == 3
    assert delays == [1.0, 2.0, 4.0]
    assert supervisor.restarts == 3


def test_a_process_that_ran_long_is_restarted_at_once_again() -> None:
    now = [0.0]
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        if seconds == 0.5:
            now[0] += 120.0  # the process runs for minutes before it dies
        else:
            delays.append(seconds)
        if len(delays) == 3:
            supervisor.stop(signal.SIGTERM)

    supervisor = Supervisor(
        [[sys.executable, "-c", "raise SystemExit(1)"]], clock=lambda: now[0], sleep=sleep
    )
    supervisor.run()
    assert delays == [1.0, 1.0, 1.0]


def test_each_process_gets_its_own_node_name() -> None:
    assert numbered(["-n", "sms@%h", "-l", "INFO"], 1, 2) == ["-n", "sms-2@%h", "-l", "INFO"]
    assert numbered(["--hostname=bulk@host"], 0, 3) == ["--hostname=bulk-1@host"]
    assert numbered(["-l", "INFO"], 0, 2) == ["-l", "INFO", "-n", "herald-1@%h"]
    assert numbered(["-n", "one@%h"], 0, 1) == ["-n", "one@%h"]
