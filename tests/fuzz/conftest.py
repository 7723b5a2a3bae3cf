"""Generated-input tests of the intake paths, on a real redis-server of their own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald.config import Settings, get_settings
from herald.intake.producer import Producer
from herald.rendering.catalog import Catalog, load_catalog
from tests.harness import redis_of_its_own


@pytest.fixture(scope="session")
def fuzz_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the fuzz tests."""
    with redis_of_its_own(tmp_path_factory.mktemp("fuzz-redis"), initialized=False) as url:
        yield url


@pytest.fixture(scope="session")
def catalog(repo_root: Path) -> Catalog:
    """The catalog of the project's own templates."""
    return load_catalog(repo_root / "templates")


@pytest.fixture(scope="session")
def fuzz_settings(fuzz_redis_url: str, repo_root: Path) -> Settings:
    """Settings of a producer on the fuzz redis-server and the project's templates."""
    return Settings(redis_url=fuzz_redis_url, templates_dir=repo_root / "templates")


@pytest.fixture(scope="session")
def producer(fuzz_settings: Settings) -> Iterator[Producer]:
    """One producer for the session, as an upstream service keeps one."""
    made = Producer(fuzz_settings)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session")
def fuzz_redis(fuzz_redis_url: str) -> redis.Redis:
    """A client that reads what the producer stored."""
    return redis.Redis.from_url(fuzz_redis_url)


@pytest.fixture(scope="module")
def cli_env(fuzz_settings: Settings) -> Iterator[None]:
    """The environment `herald enqueue` reads its settings from, for this module's tests."""
    saved = {name: os.environ.get(name) for name in ("HERALD_REDIS_URL", "HERALD_TEMPLATES_DIR")}
    os.environ["HERALD_REDIS_URL"] = fuzz_settings.redis_url
    os.environ["HERALD_TEMPLATES_DIR"] = str(fuzz_settings.templates_dir)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
