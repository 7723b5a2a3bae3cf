"""``HERALD_REDIS_URL`` as text: one Redis server, or Sentinels (``sentinel://...;...``), read
without connecting and without the settings, so that ``herald.config`` can check a URL and
``herald.state.redisconn`` can connect with it, neither importing the other."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "sentinel://"
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_TIMEOUT = 2.0
"""Seconds to wait for one Sentinel (to connect, or to answer) before asking the next."""


class RedisURLError(ValueError):
    """``HERALD_REDIS_URL`` (or the Sentinel settings that go with it) cannot be used."""


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://`` URL says: where the Sentinels are and how to log in to the master."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None


_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@;/]*@")


def display_redis_url(url: str) -> str:
    """``url`` with every password hidden, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Sentinels (``sentinel://``) rather than one Redis server."""
    return url.strip().lower().startswith(SENTINEL_SCHEME)


def _db(path: str, url: str) -> int | None:
    name = path.strip("/")
    if not name:
        return None
    if not name.isdigit():
        raise RedisURLError(f"{url}: the database after the host must be a number, not {name!r}")
    return int(name)


def parse_sentinel(url: str) -> SentinelTarget:
    """Read a ``sentinel://h1:26379/0;sentinel://h2:26379/0`` URL; ``RedisURLError`` if malformed."""
    parts = [p.strip() for p in url.split(";") if p.strip()]
    if not parts:
        raise RedisURLError("the Sentinel URL names no Sentinel")
    sentinels: list[tuple[str, int]] = []
    dbs: set[int] = set()
    first_db: int | None = None
    username = password = None
    for index, part in enumerate(parts):
        if not is_sentinel(part):
            raise RedisURLError(
                f"{part!r}: every ';'-separated part of a Sentinel URL must start with sentinel://"
            )
        try:
            split = urlsplit(part)
            port = split.port or DEFAULT_SENTINEL_PORT
        except ValueError as exc:
            raise RedisURLError(f"{part!r}: {exc}") from None
        if not split.hostname:
            raise RedisURLError(f"{part!r}: no host")
        sentinels.append((split.hostname, port))
        db = _db(split.path, part)
        if db is not None:
            dbs.add(db)
        if index == 0:
            first_db = db
            username = unquote(split.username) if split.username else None
            password = unquote(split.password) if split.password is not None else None
    if len(dbs) > 1:
        raise RedisURLError(
            f"the Sentinel URL names different databases ({sorted(dbs)}): give every part the same one"
        )
    db = first_db if first_db is not None else (dbs.pop() if dbs else 0)
    return SentinelTarget(tuple(sentinels), db, username, password)
