"""Settings that depend on each other."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from herald.config import Settings


def test_redis_patience_defaults_to_two_minutes_within_an_eighth_of_the_visibility_timeout() -> None:
    assert Settings(visibility_timeout=3600).redis_wait == 120
    assert Settings(visibility_timeout=240).redis_wait == 30


def test_redis_patience_longer_than_an_eighth_of_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="redis_patience"):
        Settings(visibility_timeout=240, redis_patience=60)
    assert Settings(visibility_timeout=480, redis_patience=60).redis_wait == 60


@pytest.mark.parametrize("zone", ["Mars/Olympus", "CST+8", "", "../../etc/passwd"])
def test_a_default_timezone_that_is_not_an_iana_zone_is_refused_at_start(zone: str) -> None:
    with pytest.raises(ValidationError, match="default_timezone"):
        Settings(default_timezone=zone)
    assert Settings(default_timezone="America/New_York").default_timezone == "America/New_York"
