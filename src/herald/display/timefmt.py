"""Times shown to people: in HERALD_DEFAULT_TIMEZONE, to the second, with the offset.

herald stores and exchanges times as epoch seconds or ISO-8601 UTC with milliseconds
(:func:`herald.state.store.iso`): exact, sortable and unambiguous for machines, which is what the
``--json`` output, the HTTP API, the ledger and Redis keep. People reading a table, a line of
the command line or the operator page think in the operators' local time, and milliseconds are
noise to them. Every human surface goes through this module, so they all agree:
``2026-12-06 22:47:03 +08:00`` (the offset stays in the text, so a time copied out of context
is still exact), with the zone named once per table, line or page by :func:`zone_note`.

Zones come from :mod:`zoneinfo` (the IANA database): offsets, including summer time, are never
computed by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from herald.config import Settings, get_settings

Moment = float | int | str | datetime | None
"""What herald keeps a time as: epoch seconds (a number, or a number as text, as Redis hashes
hold it), an ISO-8601 text, an aware datetime; ``None`` or ``""`` for a time not reached."""

_WHOLE_SECONDS = len("2026-12-06 22:47:03")


def display_zone(settings: Settings | None = None) -> ZoneInfo:
    """The zone times are shown in: ``HERALD_DEFAULT_TIMEZONE`` (``settings`` or the process's)."""
    return ZoneInfo((settings or get_settings()).default_timezone)


def local_time(moment: Moment, zone: ZoneInfo | None = None) -> str:
    """``moment`` as people read it, e.g. ``2026-12-06 22:47:03 +08:00``; ``""`` for no time.

    ``zone`` defaults to :func:`display_zone`. An ISO text without an offset is taken as UTC
    (herald writes every stored time in UTC). Sub-second digits are dropped, not rounded, as a
    clock shows them. A text that is not a time at all is returned as it is: a listing must
    show what was stored rather than fail on one odd entry.
    """
    instant = _instant(moment)
    if instant is None:
        return "" if moment is None or moment == "" else str(moment)
    shown = instant.astimezone(zone or display_zone()).isoformat(sep=" ", timespec="seconds")
    return f"{shown[:_WHOLE_SECONDS]} {shown[_WHOLE_SECONDS:]}"


def local_time_named(moment: Moment, zone: ZoneInfo | None = None) -> str:
    """A single time on a line of its own, with its zone: ``2026-12-06 22:47:03 +08:00
    (Asia/Shanghai)``; ``""`` for no time. Tables and pages name the zone once instead."""
    zone = zone or display_zone()
    shown = local_time(moment, zone)
    return f"{shown} ({zone.key})" if shown else ""


def zone_note(zone: ZoneInfo | None = None) -> str:
    """The words that name the zone of a table, page or line: ``times in Asia/Shanghai``."""
    return f"times in {(zone or display_zone()).key}"


def _instant(moment: Moment) -> datetime | None:
    """``moment`` as an aware UTC datetime; None when it is blank or not a time."""
    if moment is None or moment == "" or isinstance(moment, bool):
        return None
    if isinstance(moment, datetime):
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if isinstance(moment, int | float):
        return _from_epoch(float(moment))
    text = moment.strip()
    try:
        return _from_epoch(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _from_epoch(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):  # nan, inf, or beyond year 9999
        return None
