"""API keys: created once, stored hashed in Redis, checked on every request.

A key looks like ``hk_<id>_<secret>``. Redis keeps only the id, the SHA-256 of the secret
(the secret is 32 random bytes, so a plain hash is as strong as a slow one), the owner, the
scopes and the times; the key itself is shown once, when it is made. Scopes:

- ``producer``: enqueue, read and cancel reminders;
- ``operator``: holds, history, in-doubt deliveries, opt-outs, the operator page;
- ``admin``: API keys.

A key may hold several scopes. Revoking a key takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

import orjson
import redis

from herald import clock
from herald.state import store

Scope = Literal["producer", "operator", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
KEYS = store.PREFIX + "apikeys"
_PREFIX = "hk_"


class KeyRequestError(ValueError):
    """A key request that cannot be met (unknown scope, empty owner, unknown key id)."""


@dataclass(frozen=True)
class ApiKey:
    """What herald knows about a key: never the secret itself."""

    key_id: str
    owner: str
    scopes: frozenset[str]
    created_at: str
    created_by: str = ""
    revoked_at: str = ""
    digest: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        """Not revoked."""
        return not self.revoked_at

    def allows(self, scope: str) -> bool:
        """Whether this key may act in ``scope``."""
        return self.active and scope in self.scopes

    def public(self) -> dict[str, object]:
        """The key's description for listings (no digest)."""
        return {
            "key_id": self.key_id,
            "owner": self.owner,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "revoked_at": self.revoked_at or None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None."""
    if not raw.startswith(_PREFIX):
        return None
    key_id, sep, secret = raw[len(_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(raw) > 200:
        return None
    return key_id, secret


class KeyStore:
    """Creates, lists, revokes and verifies API keys in one Redis hash (``herald:apikeys``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(self, owner: str, scopes: Iterable[str], *, by: str = "") -> tuple[str, ApiKey]:
        """Make a key for ``owner`` with ``scopes``; returns the key (shown once) and its record."""
        owner = owner.strip()
        if not owner or len(owner) > 200:
            raise KeyRequestError("owner: give a name of 1 to 200 characters")
        wanted = sorted({s.strip() for s in scopes if s.strip()})
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown or not wanted:
            got = ", ".join(unknown) or "none"
            raise KeyRequestError(f"scope: choose from {', '.join(SCOPES)} (got {got})")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = ApiKey(key_id, owner, frozenset(wanted), store.iso(clock.time()), by, "", _digest(secret))
        if not self.redis.hsetnx(KEYS, key_id, orjson.dumps(_to_json(record))):
            raise KeyRequestError("key id collision; try again")  # 2^-48: never, but never overwrite
        return f"{_PREFIX}{key_id}_{secret}", record

    def get(self, key_id: str) -> ApiKey | None:
        """The record of ``key_id``, revoked or not."""
        raw = self.redis.hget(KEYS, key_id)
        return _from_json(key_id, raw) if raw else None

    def list(self) -> list[ApiKey]:
        """Every key, newest first."""
        found = [
            _from_json(k.decode() if isinstance(k, bytes) else str(k), v)
            for k, v in self.redis.hgetall(KEYS).items()
        ]
        return sorted(found, key=lambda k: k.created_at, reverse=True)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke ``key_id`` (kept in the list, marked revoked); revoking twice changes nothing."""
        record = self.get(key_id)
        if record is None:
            raise KeyRequestError(f"key_id: no key {key_id!r}")
        if record.revoked_at:
            return record
        revoked = ApiKey(
            record.key_id,
            record.owner,
            record.scopes,
            record.created_at,
            record.created_by,
            store.iso(clock.time()),
            record.digest,
        )
        self.redis.hset(KEYS, key_id, orjson.dumps(_to_json(revoked)))
        return revoked

    def verify(self, raw: str) -> ApiKey | None:
        """The active key ``raw`` names, or None (malformed, unknown, wrong secret, revoked)."""
        parts = split_key(raw.strip())
        if parts is None:
            return None
        record = self.get(parts[0])
        if record is None or not record.active:
            return None
        if not hmac.compare_digest(record.digest, _digest(parts[1])):
            return None
        return record


def _to_json(key: ApiKey) -> dict[str, object]:
    return {
        "owner": key.owner,
        "scopes": sorted(key.scopes),
        "created_at": key.created_at,
        "created_by": key.created_by,
        "revoked_at": key.revoked_at,
        "sha256": key.digest,
    }


def _from_json(key_id: str, raw: bytes | str) -> ApiKey:
    data = orjson.loads(raw)
    return ApiKey(
        key_id,
        str(data["owner"]),
        frozenset(data["scopes"]),
        str(data["created_at"]),
        str(data.get("created_by", "")),
        str(data.get("revoked_at", "")),
        str(data["sha256"]),
    )
