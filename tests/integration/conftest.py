"""The integration suite: herald on the outbox providers, one system for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Herald, running_herald

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def herald(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    with running_herald(tmp_path_factory.mktemp("herald"), repo_root) as system:
        yield system


@pytest.fixture
def system(herald: Herald) -> Iterator[Herald]:
    """The running system, with its clock put back to real time after the test."""
    yield herald
    herald.shift_clock(0)
