"""Times shown to people (herald.display.timefmt): HERALD_DEFAULT_TIMEZONE, to the second, zone named."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from herald.config import Settings
from herald.display.timefmt import display_zone, local_time, local_time_named, zone_note
from herald.state import store

INSTANT = datetime(2026, 12, 6, 14, 47, 3, 456_000, tzinfo=UTC)  # 22:47:03.456 in Shanghai


@pytest.mark.usefixtures("clean_env")
def test_a_utc_instant_shows_as_shanghai_local_time_with_its_offset_and_no_milliseconds() -> None:
    stored = store.iso(INSTANT.timestamp())
    assert stored == "2026-12-06T14:47:03.456+00:00"  # what machines keep
    assert local_time(stored) == "2026-12-06 22:47:03 +08:00"
    assert local_time(INSTANT.timestamp()) == "2026-12-06 22:47:03 +08:00"
    assert local_time(str(INSTANT.timestamp())) == "2026-12-06 22:47:03 +08:00"  # a Redis hash value
    assert local_time("2026-12-06T14:47:03.999Z") == "2026-12-06 22:47:03 +08:00"  # cut, not rounded
    assert local_time("2026-12-06T14:47:03") == "2026-12-06 22:47:03 +08:00"  # no offset: UTC
    assert local_time(INSTANT) == "2026-12-06 22:47:03 +08:00"
    assert zone_note() == "times in Asia/Shanghai"
    assert local_time_named(stored) == "2026-12-06 22:47:03 +08:00 (Asia/Shanghai)"


def test_the_zone_comes_from_the_settings_with_summer_time_from_zoneinfo() -> None:
    london = display_zone(Settings(default_timezone="Europe/London"))
    assert local_time(INSTANT.timestamp(), london) == "2026-12-06 14:47:03 +00:00"
    assert local_time("2026-07-01T12:00:00+00:00", london) == "2026-07-01 13:00:00 +01:00"
    kolkata = display_zone(Settings(default_timezone="Asia/Kolkata"))
    assert local_time(INSTANT.isoformat(), kolkata) == "2026-12-06 20:17:03 +05:30"
    assert zone_note(kolkata) == "times in Asia/Kolkata"
    assert local_time_named(INSTANT, kolkata) == "2026-12-06 20:17:03 +05:30 (Asia/Kolkata)"


@pytest.mark.parametrize("blank", ["", None])
def test_a_blank_time_stays_blank(blank: str | None) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert local_time(blank, zone) == ""
    assert local_time_named(blank, zone) == ""


def test_text_that_is_not_a_time_is_shown_as_it_was_stored() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert local_time("soon", zone) == "soon"
    assert local_time("nan", zone) == "nan"
