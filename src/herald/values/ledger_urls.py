"""Ledger URLs: checked and normalized without loading SQLAlchemy (settings are read by every
process; only the ledger's own processes need the database libraries)."""

from __future__ import annotations

import re

_PASSWORD = re.compile(r"^([^:/]+://[^:/@]*):[^@]*@")
EXAMPLES = "e.g. sqlite:///./var/ledger.sqlite3 or postgresql://herald@db.internal/herald"


def normalize_url(value: str) -> str:
    """A ledger URL as SQLAlchemy wants it; ``postgres://`` and ``postgresql://`` use psycopg 3.

    Raises ``ValueError`` saying what is wrong for anything but SQLite and PostgreSQL."""
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise ValueError(f"{display_url(text)!r} is not a database URL ({EXAMPLES})")
    backend, _, driver = scheme.lower().partition("+")
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "psycopg"):
            raise ValueError(f"PostgreSQL is reached through psycopg 3: use postgresql://, not {scheme}://")
        if not rest.strip("/"):
            raise ValueError(f"a PostgreSQL URL names a host and a database ({EXAMPLES})")
        return f"postgresql+psycopg://{rest}"
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ValueError(
                f"SQLite is reached through the standard library: use sqlite:///, not {scheme}://"
            )
        return f"sqlite://{rest}"
    raise ValueError(f"the ledger is SQLite or PostgreSQL, not {backend!r} ({EXAMPLES})")


def display_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    return _PASSWORD.sub(r"\1:***@", url.strip())
