"""The send-window arithmetic: inside, outside, wrapping windows, the next opening."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from herald.guards.send_window import inside, next_opening, parse_window

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ts(text: str, zone: ZoneInfo = SHANGHAI) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_parse_window_reads_24_00_as_end_of_day() -> None:
    assert parse_window("08:00-22:00") == (time(8), time(22))
    assert parse_window("00:00-24:00")[1] == time.max


@pytest.mark.parametrize(
    ("local", "expected"), [(time(7, 59), False), (time(8), True), (time(21, 59), True), (time(22), False)]
)
def test_inside_a_day_window(local: time, expected: bool) -> None:
    assert inside(local, time(8), time(22)) is expected


def test_a_window_may_wrap_past_midnight() -> None:
    assert inside(time(23), time(20), time(2))
    assert inside(time(1), time(20), time(2))
    assert not inside(time(12), time(20), time(2))


def test_next_opening_is_the_same_morning_before_it_and_the_next_morning_after_the_close() -> None:
    start, end = time(8), time(22)
    assert next_opening(_ts("2026-03-10T06:15"), "Asia/Shanghai", start, end) == _ts("2026-03-10T08:00")
    assert next_opening(_ts("2026-03-10T23:30"), "Asia/Shanghai", start, end) == _ts("2026-03-11T08:00")
    assert next_opening(_ts("2026-03-10T12:00"), "Asia/Shanghai", start, end) is None


def test_next_opening_uses_the_recipients_zone_across_a_dst_change() -> None:
    new_york = ZoneInfo("America/New_York")
    # 2026-03-08 02:00 is skipped in New York; 23:00 the night before opens at 08:00 EDT
    opening = next_opening(_ts("2026-03-07T23:00", new_york), "America/New_York", time(8), time(21))
    assert opening == _ts("2026-03-08T08:00", new_york)
    assert datetime.fromtimestamp(opening, new_york).utcoffset().total_seconds() == -4 * 3600
