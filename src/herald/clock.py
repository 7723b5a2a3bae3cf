"""The one source of "now" for herald.

Every process reads time through this module. ``HERALD_CLOCK_OFFSET`` (seconds, may be
negative or fractional) shifts the clock of every process started with it, so tests can move a
worker, the scheduler and the producer to the same future together; in one process,
time-machine travels as usual because this module reads ``time.time()`` on each call.
"""

from __future__ import annotations

import os
import time as _time
from datetime import UTC, datetime


def offset() -> float:
    """Seconds added to the system clock, from ``HERALD_CLOCK_OFFSET`` (default 0)."""
    raw = os.environ.get("HERALD_CLOCK_OFFSET", "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"HERALD_CLOCK_OFFSET must be a number of seconds, got {raw!r}") from exc


def time() -> float:
    """Seconds since the epoch, as herald sees them."""
    return _time.time() + offset()


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.fromtimestamp(time(), tz=UTC)
