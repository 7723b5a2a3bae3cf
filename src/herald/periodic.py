"""One loop for herald's long-running helpers: the scheduler, the reconciler, the ledger writer.

Each runs one step every so often until SIGTERM or SIGINT — a warm stop: the step in hand
finishes — and waits out an outage of what it reads (Redis, the ledger's database) by logging
it and trying again, after a wait that grows up to ``max_wait``. Imports nothing of herald.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("herald.periodic")


def stop_on_signals(stop: threading.Event, name: str) -> None:
    """SIGTERM and SIGINT set ``stop`` (call from the main thread)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: %s, stopping after the step in hand", name, signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_every(
    interval: float,
    step: Callable[[], bool | None],
    stop: threading.Event,
    *,
    name: str,
    outages: tuple[type[BaseException], ...],
    describe: Callable[[BaseException], str] = str,
    max_wait: float | None = None,
) -> None:
    """Run ``step``, wait ``interval`` seconds, repeat, until ``stop`` is set; a step that
    answers True has more to do and runs again at once.

    An exception of ``outages`` is logged as ``name: <describe(exc)>`` and the loop goes on,
    waiting ``interval`` doubled for each failure in a row, up to ``max_wait`` (default:
    ``interval``, no growth)."""
    failures = 0
    ceiling = interval if max_wait is None else max_wait
    while not stop.is_set():
        try:
            more = step()
        except outages as exc:
            failures += 1
            wait = min(ceiling, interval * 2 ** min(failures, 10))
            log.warning("%s: %s; trying again in %.1f s", name, describe(exc), wait)
            stop.wait(wait)
            continue
        if failures:
            log.info("%s: working again", name)
            failures = 0
        if not more:
            stop.wait(interval)
