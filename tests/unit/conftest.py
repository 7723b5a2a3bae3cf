"""Fixtures shared by the unit tests: the real template catalog, a wire reminder, a clean env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from herald.config import get_settings
from herald.rendering.catalog import Catalog, load_catalog
from tests.harness import make_reminder

CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="session")
def templates_dir(repo_root: Path) -> Path:
    """The project's own templates/ folder."""
    return repo_root / "templates"


@pytest.fixture(scope="session")
def catalog(templates_dir: Path) -> Catalog:
    """The catalog of the project's own templates."""
    return load_catalog(templates_dir)


@pytest.fixture
def now() -> datetime:
    """The present, as an aware UTC datetime."""
    return datetime.now(UTC)


@pytest.fixture
def wire(now: datetime) -> dict[str, Any]:
    """DESIGN.md's example reminder (wire format, the tests' one builder), with its dates moved
    relative to now."""
    return make_reminder(
        id="acct-1029-overdue-1",
        not_before=(now + timedelta(hours=1)).astimezone(CST).isoformat(),
        expires_at=(now + timedelta(days=2)).astimezone(CST).isoformat(),
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No HERALD_* variable from the outer environment, and settings read afresh."""
    for name in list(os.environ):
        if name.startswith("HERALD_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
