"""Frequency caps as ``HERALD_CAPS`` writes them: ``sms.collection=2/24h,1/4h;email.collection=3/24h``
(at most 2 collection SMS a day and 1 per 4 hours, and 3 collection emails a day)."""

from __future__ import annotations

import re
from functools import cache

_RULE = re.compile(r"^(\d+)/(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@cache
def parse_caps(text: str) -> dict[tuple[str, str], tuple[tuple[int, int], ...]]:
    """``sms.collection=2/24h,1/4h;...`` as {(channel, category): ((count, seconds), ...)}."""
    caps: dict[tuple[str, str], tuple[tuple[int, int], ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        scope, _, rules = part.partition("=")
        channel, _, category = scope.strip().partition(".")
        if not channel or not category or not rules:
            raise ValueError(f"cap {part!r} must look like sms.collection=2/24h,1/4h")
        parsed = []
        for rule in rules.split(","):
            match = _RULE.match(rule.strip())
            if not match or int(match.group(1)) < 1:
                raise ValueError(f"cap rule {rule!r} must look like 2/24h (count/window)")
            parsed.append((int(match.group(1)), int(match.group(2)) * _UNITS[match.group(3)]))
        caps[(channel, category)] = tuple(parsed)
    return caps
