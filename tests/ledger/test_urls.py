"""Ledger URLs: what HERALD_LEDGER_URL accepts, and how it is shown."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from herald.config import Settings
from herald.values.ledger_urls import display_url, normalize_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///./var/ledger.sqlite3", "sqlite:///./var/ledger.sqlite3"),
        ("postgres://herald:pw@db/herald", "postgresql+psycopg://herald:pw@db/herald"),
        ("postgresql://herald@db:5433/herald", "postgresql+psycopg://herald@db:5433/herald"),
        (" postgresql+psycopg://db/herald ", "postgresql+psycopg://db/herald"),
    ],
)
def test_sqlite_and_postgresql_urls_are_accepted(given: str, used: str) -> None:
    assert normalize_url(given) == used


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("mysql://db/herald", "SQLite or PostgreSQL"),
        ("postgresql+psycopg2://db/herald", "psycopg 3"),
        ("ledger.sqlite3", "not a database URL"),
        ("postgresql://", "names a host and a database"),
    ],
)
def test_other_urls_are_refused_naming_the_setting(given: str, complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(ledger_url=given)
    assert caught.value.errors()[0]["loc"] == ("ledger_url",)
    assert complaint in str(caught.value)


def test_passwords_are_hidden_when_shown() -> None:
    assert (
        display_url("postgresql+psycopg://herald:s3cret@db/herald")
        == "postgresql+psycopg://herald:***@db/herald"
    )
    assert display_url("sqlite:///./var/ledger.sqlite3") == "sqlite:///./var/ledger.sqlite3"
