"""Send window: collection contact only within allowed local hours of the recipient."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from herald.guards.base import Defer, Delivery, Guard, GuardContext, Verdict
from herald.values.windows import parse_window

__all__ = ["SendWindowGuard", "claim_windows", "inside", "next_opening", "parse_window", "window_bounds"]


def inside(local: time, start: time, end: time) -> bool:
    """Whether ``local`` falls in the window (which may wrap past midnight)."""
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_opening(now: float, timezone: str, start: time, end: time) -> float | None:
    """None when ``now`` is inside the window, else when it next opens (epoch seconds)."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, tz=zone)
    if inside(local.time(), start, end):
        return None
    opening = datetime.combine(local.date(), start, tzinfo=zone)
    if opening.timestamp() <= now:
        opening = datetime.combine(local.date() + timedelta(days=1), start, tzinfo=zone)
    return opening.timestamp()


def window_bounds(
    now: float, timezone: str, start: time, end: time, days: int = 2
) -> list[tuple[float, float]]:
    """The recipient's windows from yesterday to ``days`` days ahead, as (open, close) epoch
    seconds: absolute instants, so the claim can test them on Redis's clock (Lua knows no time
    zones). A window that wraps past midnight closes the next day."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, tz=zone).date()
    bounds = []
    for offset in range(-1, days + 1):
        day = today + timedelta(days=offset)
        opening = datetime.combine(day, start, tzinfo=zone)
        closing_day = day if end == time.max or end > start else day + timedelta(days=1)
        closing = (
            datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
            if end == time.max
            else datetime.combine(closing_day, end, tzinfo=zone)
        )
        bounds.append((opening.timestamp(), closing.timestamp()))
    return bounds


def claim_windows(settings_window: str, category: str, timezone: str, now: float) -> str:
    """The claim's send-window argument for one delivery (``''`` when no window applies).

    The same for every delivery to one time zone within an hour (yesterday's to the day
    after tomorrow's windows cover any moment of it), so it is computed once per hour and zone."""
    if category != "collection":
        return ""
    return _windows_of_the_hour(settings_window, timezone, int(now // 3600))


@lru_cache(maxsize=4096)
def _windows_of_the_hour(settings_window: str, timezone: str, hour: int) -> str:
    start, end = parse_window(settings_window)
    return ";".join(f"{o:.3f},{c:.3f}" for o, c in window_bounds(hour * 3600.0, timezone, start, end))


class SendWindowGuard(Guard):
    """Defers collection deliveries outside the recipient's allowed hours to the next opening.

    Parameters: ``HERALD_SEND_WINDOW`` (e.g. ``08:00-22:00``, the recipient's local time) and
    ``HERALD_DEFAULT_TIMEZONE`` for recipients without one. Hook: ``check`` schedules, never
    drops: the delivery comes back at the opening and every guard runs again.
    """

    name = "send_window"

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Defer collection deliveries that are outside the window now."""
        start, end = parse_window(ctx.settings.send_window)
        verdicts: dict[str, Verdict] = {}
        for d in batch:
            if d.category != "collection":
                continue
            zone = d.reminder.get("to", {}).get("timezone") or ctx.settings.default_timezone
            opening = next_opening(ctx.now, zone, start, end)
            if opening is not None:
                local = datetime.fromtimestamp(opening, tz=ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
                verdicts[d.key] = Defer(
                    opening,
                    f"outside the send window {ctx.settings.send_window} ({zone}); next opening {local}",
                )
        return verdicts
