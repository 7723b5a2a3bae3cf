"""Settings that depend on each other."""

from __future__ import annotations

import os
import subprocess
import sys

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


@pytest.mark.parametrize(
    ("window", "says"),
    [
        ("08:00-24:30", "the end must be a time of day, 00:00 to 23:59, or 24:00"),
        ("09:00-09:00", "is empty: the window never opens"),
        ("24:00-08:00", "the start must be a time of day"),
        ("8:00-22:00", "must look like 08:00-22:00"),
        ("08:60-22:00", "the start must be a time of day"),
    ],
)
def test_a_send_window_that_would_break_or_never_open_is_refused_at_start(window: str, says: str) -> None:
    with pytest.raises(ValidationError, match="send_window") as info:
        Settings(send_window=window)
    assert says in str(info.value)
    assert Settings(send_window="21:00-02:00").send_window == "21:00-02:00"  # wraps past midnight
    assert Settings(send_window="00:00-24:00").send_window == "00:00-24:00"


def test_a_secret_key_shorter_than_32_bytes_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(secret_key="a" * 31)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(secret_key="   " + "b" * 20 + "   ")  # type: ignore[arg-type]
    assert Settings(secret_key="还" * 11).secret_key is not None  # type: ignore[arg-type]  # 33 bytes


def test_a_process_refuses_an_unusable_configuration_naming_each_setting() -> None:
    env = {**os.environ, "HERALD_SEND_WINDOW": "08:00-24:30", "HERALD_SECRET_KEY": "short"}
    done = subprocess.run(
        [sys.executable, "-m", "herald.cli", "status", "anything"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "herald: the configuration is not usable:"
    assert any(line.startswith("HERALD_SEND_WINDOW: '08:00-24:30': the end must") for line in lines)
    assert any(line.startswith("HERALD_SECRET_KEY: must be at least 32 bytes") for line in lines)
