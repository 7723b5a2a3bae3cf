"""Which providers a channel uses, and in what order: ``HERALD_<CHANNEL>_PROVIDER`` lists and
``HERALD_SMS_ROUTES`` rules.

``HERALD_SMS_PROVIDER=aliyun,twilio`` enables both and is the route of every number no rule
names. ``HERALD_SMS_ROUTES=86=aliyun,twilio;*=twilio`` sends numbers whose calling code is 86
to Aliyun first and Twilio after it; ``*`` is the rest. A rule names calling-code digits
(the longest matching prefix wins, so ``852`` beats ``8``). An entry may carry a weight,
``1=twilio:9,aliyun:1``: the first provider of a delivery is drawn by weight among the
weighted entries (steadily, from the delivery's key, so a retry draws the same), and the
others follow in the order written, for failover.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from herald.models import Channel

KNOWN: dict[Channel, tuple[str, ...]] = {
    "sms": ("outbox", "twilio", "aliyun"),
    "email": ("outbox", "smtp"),
    "push": ("outbox", "fcm", "apns"),
}
"""The providers each channel can use, in this build."""


@dataclass(frozen=True)
class Choice:
    """One provider of a route; ``weight`` 0 means it only follows, for failover."""

    name: str
    weight: int = 0


@dataclass(frozen=True)
class Route:
    """The providers for numbers whose digits start with ``prefix`` ("" for every number)."""

    prefix: str
    choices: tuple[Choice, ...]

    def order(self, key: str) -> list[str]:
        """The providers in the order to try them for the delivery ``key``."""
        names = [c.name for c in self.choices]
        weighted = [c for c in self.choices if c.weight > 0]
        if len(weighted) < 2:
            if weighted:
                names.remove(weighted[0].name)
                names.insert(0, weighted[0].name)
            return names
        total = sum(c.weight for c in weighted)
        point = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % total
        for choice in weighted:
            if point < choice.weight:
                names.remove(choice.name)
                return [choice.name, *names]
            point -= choice.weight
        return names  # pragma: no cover - the loop always returns


def parse_providers(channel: Channel, value: str) -> tuple[str, ...]:
    """``aliyun,twilio`` as a tuple, checked against :data:`KNOWN`; ValueError says why."""
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    if not names:
        raise ValueError(f"names no provider; {channel} can use {', '.join(KNOWN[channel])}")
    unknown = [n for n in names if n not in KNOWN[channel]]
    if unknown:
        raise ValueError(
            f"unknown {channel} provider {unknown[0]!r}; {channel} can use {', '.join(KNOWN[channel])}"
        )
    if len(set(names)) != len(names):
        raise ValueError("names a provider twice")
    if "outbox" in names and len(names) > 1:
        raise ValueError("`outbox` stands alone: it is the embedded default, never a failover")
    return names


def parse_routes(value: str, enabled: tuple[str, ...]) -> tuple[Route, ...]:
    """``86=aliyun,twilio;*=twilio`` as routes, longest prefix first, ending with the ``*``
    route (``enabled`` in order when the rules name none). Every provider named must be
    enabled in ``HERALD_SMS_PROVIDER``; ValueError says which rule is wrong."""
    routes: dict[str, Route] = {}
    for rule in (r.strip() for r in value.split(";")):
        if not rule:
            continue
        prefix, sep, names = rule.partition("=")
        prefix = prefix.strip().removeprefix("+")
        if not sep or not (prefix == "*" or prefix.isdigit()) or len(prefix) > 6:
            raise ValueError(
                f"rule {rule!r}: write a calling code (or *), =, then providers, e.g. 86=aliyun,twilio"
            )
        choices: list[Choice] = []
        for entry in (e.strip() for e in names.split(",")):
            name, colon, weight = entry.partition(":")
            name = name.strip().lower()
            if name not in enabled:
                raise ValueError(
                    f"rule {rule!r}: {name or 'an empty name'!r} is not in HERALD_SMS_PROVIDER "
                    f"({','.join(enabled)})"
                )
            if colon and not (weight.strip().isdigit() and 0 < int(weight) <= 1000):
                raise ValueError(f"rule {rule!r}: the weight of {name} must be a whole number from 1 to 1000")
            choices.append(Choice(name, int(weight) if colon else 0))
        if len({c.name for c in choices}) != len(choices):
            raise ValueError(f"rule {rule!r}: names a provider twice")
        key = "" if prefix == "*" else prefix
        if key in routes:
            raise ValueError(f"rule {rule!r}: {prefix} has a rule already")
        routes[key] = Route(key, tuple(choices))
    if "" not in routes:
        routes[""] = Route("", tuple(Choice(n) for n in enabled))
    return tuple(sorted(routes.values(), key=lambda r: -len(r.prefix)))


def route_for(routes: tuple[Route, ...], number: str) -> Route:
    """The route of an E.164 ``number`` (longest matching calling-code prefix, else ``*``)."""
    digits = number.removeprefix("+")
    for route in routes:
        if digits.startswith(route.prefix):
            return route
    return routes[-1]  # pragma: no cover - the "" route matches every number
