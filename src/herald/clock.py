"""The one source of "now" for herald.

Every process reads time through this module, so that tests can move the clocks of several
processes (producer, workers, scheduler) together:

- ``HERALD_CLOCK_OFFSET`` (seconds, may be negative or fractional) shifts a process's clock
  for its whole life;
- ``HERALD_CLOCK_OFFSET_FILE`` names a file holding such a number; it is re-read whenever the
  file changes, so a test can move running processes forward in time. The two add up.

Neither is set in production. In one process, time-machine travels as usual because this
module reads ``time.time()`` on each call.
"""

from __future__ import annotations

import os
import threading
import time as _time
from datetime import UTC, datetime
from pathlib import Path

_lock = threading.Lock()
_file_state: tuple[str, int, int, float] | None = None  # path, mtime_ns, size, offset


def _number(raw: str, source: str) -> float:
    raw = raw.strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{source} must be a number of seconds, got {raw!r}") from exc


def _file_offset(path: str) -> float:
    global _file_state
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0.0
    with _lock:
        if _file_state and _file_state[:3] == (path, st.st_mtime_ns, st.st_size):
            return _file_state[3]
        value = _number(Path(path).read_text(), f"HERALD_CLOCK_OFFSET_FILE ({path})")
        _file_state = (path, st.st_mtime_ns, st.st_size, value)
        return value


def offset() -> float:
    """Seconds added to the system clock (0 unless a test shifted it)."""
    total = _number(os.environ.get("HERALD_CLOCK_OFFSET", ""), "HERALD_CLOCK_OFFSET")
    path = os.environ.get("HERALD_CLOCK_OFFSET_FILE")
    if path:
        total += _file_offset(path)
    return total


def time() -> float:
    """Seconds since the epoch, as herald sees them."""
    return _time.time() + offset()


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.fromtimestamp(time(), tz=UTC)
