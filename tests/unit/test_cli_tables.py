"""The command line's tables (herald.cli.common.make_table) in consoles of any width."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from herald.cli.common import make_table

TIME = "2026-12-06 22:47:03 +08:00"
HEADERS = ("channel", "state", "outcome", "reason", "attempts", "updated")
REASON = "hold agreement:AGR-77 (agreement AGR-77): plan signed by the borrower on the phone"


def _rendered(width: int) -> list[str]:
    table = make_table(*HEADERS, times=["updated"], right=["attempts"])
    table.add_row("sms", "suppressed", "suppressed", REASON, "1", TIME)
    table.add_row("email", "accepted", "-", "-", "0", TIME)
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None).print(table)
    return buffer.getvalue().splitlines()


def _header_words(lines: list[str]) -> list[str]:
    header = lines[1 : next(i for i, line in enumerate(lines) if line.startswith("┡"))]
    return [word for line in header for cell in line.split("┃") for word in cell.split()]


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("width", [64, 72, 80, 100, 120, 200])
def test_a_narrow_console_folds_the_long_text_never_a_header_word_and_crops_nothing(width: int) -> None:
    lines = _rendered(width)
    assert _header_words(lines) == list(HEADERS)
    assert all(len(line) <= width for line in lines)
    assert all(line.endswith(("┓", "┃", "┩", "│", "┘")) for line in lines[:-1])  # the right edge is there
    assert lines[-1].strip() == "times in Asia/Shanghai"  # the caption names the zone
    if width >= 80:
        assert sum(TIME in line for line in lines) == 2  # a time is kept whole where it fits


@pytest.mark.usefixtures("clean_env")
def test_a_table_names_only_its_own_columns_as_times() -> None:
    with pytest.raises(ValueError, match="not columns"):
        make_table("at", "reason", times=["updated"])
    assert make_table("address").caption is None  # no times, no zone to name
