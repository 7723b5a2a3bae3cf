"""Where the ledger lives: URLs, engines (one per URL per process) and dialect-specific inserts.

Two databases are supported, both with ``INSERT ... ON CONFLICT DO NOTHING``: SQLite (the
default, a file under ``./var``; fine for one host) and PostgreSQL through psycopg 3
(``postgresql://user:password@host/db``; several hosts, backups, five years of history).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from herald.ledger.schema import metadata
from herald.values.ledger_urls import display_url, normalize_url

SQLITE_BUSY_MS = 30_000
"""How long a SQLite connection waits for another process's write to finish."""
CONNECT_TIMEOUT = 10
"""Seconds to wait for PostgreSQL to answer a new connection."""

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class LedgerUnavailable(RuntimeError):
    """The ledger's database cannot be reached or set up."""


def open_ledger(url: str) -> Engine:
    """The engine of the ledger at ``url`` (normalized), its tables created on first use.

    One engine per URL per process (it holds the connection pool). Raises
    ``LedgerUnavailable`` when the database cannot be reached."""
    url = normalize_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            engine = _create(url)
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerUnavailable(
                f"cannot open the ledger at {display_url(url)}: {describe_error(exc)}"
            ) from exc
        try:
            _create_tables(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise LedgerUnavailable(
                f"cannot open the ledger at {display_url(url)}: {describe_error(exc)}"
            ) from exc
        _engines[url] = engine
        return engine


def close_ledgers() -> None:
    """Close every engine this process opened (tests, and commands before they exit)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _create_tables(engine: Engine) -> None:
    """Create what is missing. Two processes starting together (the API and the writer) may
    race to create the same table: the loser finds it there on its second look."""
    try:
        metadata.create_all(engine)
    except (IntegrityError, ProgrammingError):
        metadata.create_all(engine)


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT}
        return create_engine(url, pool_pre_ping=True, future=True, connect_args=connect_args)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, connect_args={"timeout": SQLITE_BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers (history) never block the writer
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.close()

    return engine


def insert_ignore(engine: Engine, table: Table) -> Insert:
    """``INSERT INTO table ... ON CONFLICT DO NOTHING`` in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def upsert(engine: Engine, table: Table, key: str, values: dict[str, Any]) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` setting every other column of ``values``."""
    changes = {k: v for k, v in values.items() if k != key}
    if engine.dialect.name == "postgresql":
        pg = pg_insert(table).values(**values)
        return pg.on_conflict_do_update(index_elements=[key], set_=changes)
    lite = sqlite_insert(table).values(**values)
    return lite.on_conflict_do_update(index_elements=[key], set_=changes)


def describe_error(exc: BaseException) -> str:
    """The first line of a database error (the rest is SQL and a link)."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
