"""The fault suite: the real system under a steady load while it is broken in one way per test.

It runs on its own (about ten minutes on two cores), never as part of ``pytest tests``:

    .venv/bin/pytest tests/faults -m faults

Each test adds its row to the table that is printed at the end of the run and written to
``var/faults/table.md`` and to the run's temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.faults.tally import Row, render, write

ROWS: list[Row] = []
TABLE = ROOT / "var" / "faults" / "table.md"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the suite unless it was asked for with ``-m faults``."""
    if "faults" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the fault suite runs on its own: .venv/bin/pytest tests/faults -m faults")
    for item in items:
        if item.get_closest_marker("faults") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fault_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Row]]:
    """The rows of this run, written out when the session ends."""
    yield ROWS
    if ROWS:
        write(ROWS, TABLE, tmp_path_factory.getbasetemp() / "faults-table.md")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.section("fault table")
        terminalreporter.write_line(render(ROWS))
        terminalreporter.write_line(f"(written to {TABLE})")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path
