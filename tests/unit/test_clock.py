"""herald.clock: the one "now", shiftable by environment and by a file, and travelled in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from herald import clock


@pytest.fixture(autouse=True)
def no_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_CLOCK_OFFSET", raising=False)
    monkeypatch.delenv("HERALD_CLOCK_OFFSET_FILE", raising=False)


@pytest.fixture
def frozen() -> Iterator[datetime]:
    """Time stopped at a moment a few days from now."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with time_machine.travel(moment, tick=False):
        yield moment


def _rewrite(path: Path, text: str) -> None:
    """Write ``text`` and move the file's mtime forward, as a later write would."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_no_offset_by_default() -> None:
    assert clock.offset() == 0.0


def test_clock_follows_time_machine(frozen: datetime) -> None:
    assert clock.now() == frozen
    assert clock.time() == frozen.timestamp()
    assert clock.now().tzinfo is UTC


def test_travel_moves_the_clock_again() -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)
    with time_machine.travel(later, tick=False):
        assert clock.now() == later


@pytest.mark.parametrize(("raw", "seconds"), [("90", 90.0), ("-1.5", -1.5), (" 3600 ", 3600.0), ("", 0.0)])
def test_offset_from_environment(
    monkeypatch: pytest.MonkeyPatch, frozen: datetime, raw: str, seconds: float
) -> None:
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", raw)

    assert clock.offset() == seconds
    assert clock.now() == frozen + timedelta(seconds=seconds)


def test_offset_from_environment_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "one hour")

    with pytest.raises(ValueError, match="HERALD_CLOCK_OFFSET must be a number of seconds, got 'one hour'"):
        clock.offset()


def test_offset_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, frozen: datetime) -> None:
    path = tmp_path / "offset"
    path.write_text("7200\n")
    monkeypatch.setenv("HERALD_CLOCK_OFFSET_FILE", str(path))

    assert clock.offset() == 7200.0
    assert clock.now() == frozen + timedelta(hours=2)


def test_rewriting_the_file_moves_the_clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("60")
    monkeypatch.setenv("HERALD_CLOCK_OFFSET_FILE", str(path))
    assert clock.offset() == 60.0

    _rewrite(path, "-86400.5")
    assert clock.offset() == -86400.5

    _rewrite(path, "-86400.7")
    assert clock.offset() == -86400.7


def test_missing_or_empty_file_is_no_offset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "offset"
    monkeypatch.setenv("HERALD_CLOCK_OFFSET_FILE", str(path))
    assert clock.offset() == 0.0

    path.write_text("")
    assert clock.offset() == 0.0


def test_file_and_environment_add_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("30")
    monkeypatch.setenv("HERALD_CLOCK_OFFSET_FILE", str(path))
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "12.5")

    assert clock.offset() == 42.5


def test_file_must_hold_a_number(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("tomorrow")
    monkeypatch.setenv("HERALD_CLOCK_OFFSET_FILE", str(path))

    with pytest.raises(ValueError, match="HERALD_CLOCK_OFFSET_FILE") as info:
        clock.offset()
    assert str(path) in str(info.value)
    assert "'tomorrow'" in str(info.value)
