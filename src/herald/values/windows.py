"""Send windows: ``08:00-22:00``, the local hours in which collection contact is allowed."""

from __future__ import annotations

import re
from datetime import time

_WINDOW = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def parse_window(text: str) -> tuple[time, time]:
    """``08:00-22:00`` as (start, end); an end of ``24:00`` means the end of the day, and an end
    before the start wraps past midnight (``21:00-02:00``).

    Raises ValueError, saying what is wrong, for anything else: a malformed text, an hour or a
    minute out of range, a start of 24:00, or a start equal to the end (a window that never
    opens would hold every collection reminder until it expires)."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"{text!r} must look like 08:00-22:00 (HH:MM-HH:MM, local time)")
    h1, m1, h2, m2 = (int(x) for x in match.groups())
    if h1 > 23 or m1 > 59:
        raise ValueError(f"{text!r}: the start must be a time of day, 00:00 to 23:59")
    if m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r}: the end must be a time of day, 00:00 to 23:59, or 24:00")
    start = time(h1, m1)
    end = time.max if h2 == 24 else time(h2, m2)
    if (h1, m1) == (h2, m2):
        raise ValueError(f"{text!r} is empty: the window never opens (00:00-24:00 is always open)")
    return start, end
