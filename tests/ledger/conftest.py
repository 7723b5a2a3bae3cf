"""The ledger's suites: a real redis-server, and the ledger on SQLite and on a real PostgreSQL.

``ledger_url`` is parametrized: every test that takes it runs once on a SQLite file and once
on a fresh database of a PostgreSQL server started for the session (skipped, with the
reason, only where PostgreSQL's programs are not installed: ``scripts/bootstrap.sh``'s
``ensure_postgres`` installs them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from herald.config import Settings
from herald.ledger.db import close_ledgers, open_ledger
from tests.harness import redis_of_its_own
from tests.ledger.postgres import PostgresServer, server_binaries


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_of_its_own(tmp_path_factory.mktemp("ledger-redis"), initialized=False) as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on an empty Redis."""
    c = redis.Redis.from_url(redis_url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL's initdb and postgres are not installed (Debian: apt-get install postgresql, "
            "or run ./test.sh, which does it)"
        )
    server = PostgresServer(binaries)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty ledger: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.sqlite3"
        close_ledgers()
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        close_ledgers()
        server.drop_database(name)


@pytest.fixture
def engine(ledger_url: str) -> Engine:
    return open_ledger(ledger_url)


@pytest.fixture
def settings(redis_url: str, ledger_url: str, repo_root: Path, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        ledger_url=ledger_url,
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path / "outbox",
        caps="",
        duplicate_window=0,
        send_window="00:00-24:00",
    )
