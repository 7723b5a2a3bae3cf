"""Rates as herald's settings write them (``30/s``, ``1000/m``): parsed without the settings,
so that ``herald.config`` can check them and the limiter (``herald.delivery.ratelimit``) can use
them, neither importing the other."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True)
class Rate:
    """A limit: ``per_second`` units a second on average, up to ``burst`` units at once."""

    per_second: float
    burst: int

    @property
    def interval_us(self) -> int:
        """Microseconds per unit (GCRA's emission interval)."""
        return max(1, round(1_000_000 / self.per_second))

    @property
    def tolerance_us(self) -> int:
        """How far ahead of schedule a unit may go: the burst beyond the first unit."""
        return (self.burst - 1) * self.interval_us

    def __str__(self) -> str:
        return f"{self.per_second:g}/s (burst {self.burst})"


def parse_rate(text: str, burst: int | None = None) -> Rate | None:
    """``30/s``, ``1000/m``, ``5/10s``, ``3600/h``; empty or ``off`` means no limit.

    The burst defaults to a tenth of a second's worth (at least 1).
    """
    if not text.strip() or text.strip().lower() == "off":
        return None
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a rate such as 30/s, 1000/m or 3600/h (or 'off')")
    count, span, unit = float(match[1]), int(match[2] or 1), _SECONDS[match[3]]
    if count <= 0 or span <= 0:
        raise ValueError(f"{text!r}: a rate must be positive")
    per_second = count / (span * unit)
    return Rate(per_second, burst if burst else max(1, math.floor(per_second / 10)))
