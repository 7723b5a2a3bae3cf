"""Suppression holds: "do not send category C to account A (until T), because R".

An account can have any number of holds, each from a source — an agreement reference or an
operator — and lifting one leaves the others. Every change is appended to the
``herald:holds:audit`` stream (who, when, what, before and after).

Redis layout, per account:

| key | type | holds |
| --- | --- | --- |
| ``herald:holds:<account>`` | hash | hold id -> the hold as JSON |
| ``herald:holdmark:<account>`` | hash | per category: when the latest hold began, and its id |
| ``herald:holds:index`` | sorted set | accounts with holds (for listing) |
| ``herald:suppression:marker`` | string | present when the store is populated; without it nothing is sent |

The hold mark outlives the hold: it implements "decided before the agreement". A collection
delivery accepted before the account's latest collection hold began is never sent, even after
the hold is lifted.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
import redis

from herald import clock, store
from herald.models import Category

HOLDS = store.PREFIX + "holds:"
MARK = store.PREFIX + "holdmark:"
INDEX = store.PREFIX + "holds:index"
AUDIT = store.PREFIX + "holds:audit"
MARKER = store.PREFIX + "suppression:marker"
AUDIT_MAXLEN = 10_000_000
CATEGORIES: tuple[Category, ...] = ("collection", "agreement", "transactional")


def holds_key(account: str) -> str:
    """The hash of an account's holds."""
    return HOLDS + account


def mark_key(account: str) -> str:
    """The hash of when an account's latest hold per category began."""
    return MARK + account


@dataclass(frozen=True)
class Hold:
    """One hold on one account."""

    id: str
    account_id: str
    source: Literal["agreement", "operator"]
    reason: str
    categories: tuple[str, ...] = ("collection",)
    agreement: str | None = None
    until: float | None = None
    by: str = ""
    created_at: float = 0.0

    def active(self, now: float) -> bool:
        """Whether the hold still applies at ``now`` (it lapses by itself at ``until``)."""
        return self.until is None or now < self.until

    def blocks(self, category: str, now: float) -> bool:
        """Whether the hold stops ``category`` at ``now``."""
        return category in self.categories and self.active(now)

    def describe(self) -> str:
        """A short text for reasons and events: the reason and its agreement."""
        where = f"agreement {self.agreement}" if self.agreement else f"operator {self.by or '?'}"
        return f"hold {self.id} ({where}): {self.reason}"

    def to_json(self) -> bytes:
        """The stored form."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Hold:
        """Read the stored form."""
        data: dict[str, Any] = orjson.loads(raw)
        data["categories"] = tuple(data.get("categories", ("collection",)))
        return cls(**data)


def parse_until(value: str | None, timezone: str) -> float | None:
    """A hold's end: a date means the end of that day in ``timezone``; a time needs an offset."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(timezone))
            return end.timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is neither a date (2026-12-31) nor a time with an offset") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} needs an offset, e.g. 2026-12-31T18:00:00+08:00")
    return moment.timestamp()


def hold_id(source: str, agreement: str | None) -> str:
    """Agreement holds are addressed by their agreement; operator holds get a fresh id."""
    return f"agreement:{agreement}" if agreement else f"operator:{secrets.token_hex(4)}"


@dataclass
class Change:
    """What a write did, for the caller and the audit trail."""

    action: str
    account_id: str
    before: Hold | None = None
    after: Hold | None = None
    lifted: list[Hold] = field(default_factory=list)


class SuppressionStore:
    """Reads and changes holds (synchronous: the command line, the API, agreement events)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # -- the marker ----------------------------------------------------------------------

    def initialized(self) -> bool:
        """Whether the store is known to be populated (the marker is present)."""
        return bool(self.redis.exists(MARKER))

    def initialize(self, by: str) -> None:
        """Mark the store populated. Only after holds are loaded (or there are none yet)."""
        self.redis.set(MARKER, orjson.dumps({"by": by, "at": clock.time()}))

    # -- reading -------------------------------------------------------------------------

    def holds(self, account: str) -> list[Hold]:
        """Every hold of ``account`` (lapsed ones included), oldest first."""
        raw = self.redis.hvals(holds_key(account))
        return sorted((Hold.from_json(r) for r in raw), key=lambda h: h.created_at)

    def audit(self, account: str | None = None, count: int = 100) -> list[dict[str, str]]:
        """The latest audit entries, newest first, optionally of one account."""
        out: list[dict[str, str]] = []
        last = "+"
        while len(out) < count:
            entries = self.redis.xrevrange(AUDIT, max=last, count=1000)
            if not entries:
                break
            for entry_id, fields in entries:
                row = {_t(k): _t(v) for k, v in (fields or {}).items()}
                row["id"] = _t(entry_id)
                if account is None or row.get("account_id") == account:
                    out.append(row)
            last = "(" + _t(entries[-1][0])
        return out[:count]

    def accounts(self, *, offset: int = 0, count: int = 50, prefix: str = "") -> list[str]:
        """Accounts with holds, in order, a page at a time."""
        names: list[Any]
        if prefix:
            names = self.redis.zrangebylex(INDEX, f"[{prefix}", f"[{prefix}\xff", start=offset, num=count)
        else:
            names = self.redis.zrange(INDEX, offset, offset + count - 1)
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    # -- writing -------------------------------------------------------------------------

    def add(self, hold: Hold) -> Change:
        """Add (or replace, same id) a hold; records the mark and the audit entry atomically."""
        now = clock.time()
        if not hold.created_at:
            hold = Hold(**{**asdict(hold), "created_at": now})
        before_raw = self.redis.hget(holds_key(hold.account_id), hold.id)
        before = Hold.from_json(before_raw) if before_raw else None
        if (
            before is not None
            and before.to_json() == Hold(**{**asdict(hold), "created_at": before.created_at}).to_json()
        ):
            return Change("unchanged", hold.account_id, before, before)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(holds_key(hold.account_id), hold.id, hold.to_json())
            for category in hold.categories:
                pipe.hset(
                    mark_key(hold.account_id),
                    mapping={category: hold.created_at, f"{category}:hold": hold.id},
                )
            pipe.zadd(INDEX, {hold.account_id: 0})
            pipe.xadd(
                AUDIT,
                _audit(
                    "add" if before is None else "replace",
                    hold.account_id,
                    hold.by,
                    before,
                    hold,
                    hold.reason,
                ),
                maxlen=AUDIT_MAXLEN,
                approximate=True,
            )
            pipe.execute()
        return Change("added" if before is None else "replaced", hold.account_id, before, hold)

    def add_many(self, holds: list[Hold]) -> list[Change]:
        """Add holds in two pipelined round trips (imports); unchanged ones are left alone."""
        now = clock.time()
        with self.redis.pipeline(transaction=False) as pipe:
            for h in holds:
                pipe.hget(holds_key(h.account_id), h.id)
            existing = pipe.execute()
        changes: list[Change] = []
        with self.redis.pipeline(transaction=True) as pipe:
            for h, raw in zip(holds, existing, strict=True):
                before = Hold.from_json(raw) if raw else None
                hold = Hold(
                    **{**asdict(h), "created_at": before.created_at if before else (h.created_at or now)}
                )
                if before is not None and before.to_json() == hold.to_json():
                    changes.append(Change("unchanged", h.account_id, before, before))
                    continue
                pipe.hset(holds_key(hold.account_id), hold.id, hold.to_json())
                if before is None:
                    for category in hold.categories:
                        mark: dict[Any, Any] = {category: hold.created_at, f"{category}:hold": hold.id}
                        pipe.hset(mark_key(hold.account_id), mapping=mark)
                pipe.zadd(INDEX, {hold.account_id: 0})
                action = "add" if before is None else "replace"
                entry = _audit(action, hold.account_id, hold.by, before, hold, hold.reason)
                pipe.xadd(AUDIT, entry, maxlen=AUDIT_MAXLEN, approximate=True)
                changes.append(
                    Change("added" if before is None else "replaced", hold.account_id, before, hold)
                )
            pipe.execute()
        return changes

    def remove(
        self, account: str, *, by: str, reason: str, agreement: str | None = None, hold: str | None = None
    ) -> Change:
        """Lift the hold of ``agreement`` (or the hold ``hold``), or every hold of the account."""
        current = self.holds(account)
        if agreement is not None:
            chosen = [h for h in current if h.agreement == agreement]
        elif hold is not None:
            chosen = [h for h in current if h.id == hold]
        else:
            chosen = current
        if not chosen:
            return Change("nothing to lift", account)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(holds_key(account), *[h.id for h in chosen])
            if len(chosen) == len(current):
                pipe.zrem(INDEX, account)
            for h in chosen:
                pipe.xadd(
                    AUDIT, _audit("lift", account, by, h, None, reason), maxlen=AUDIT_MAXLEN, approximate=True
                )
            pipe.execute()
        return Change("lifted", account, lifted=chosen)


def _t(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _audit(
    action: str, account: str, by: str, before: Hold | None, after: Hold | None, reason: str
) -> dict[Any, Any]:
    return {
        "action": action,
        "account_id": account,
        "by": by,
        "reason": reason,
        "at": store.iso(clock.time()),
        "before": before.to_json() if before else "",
        "after": after.to_json() if after else "",
    }


def active_holds(holds: Iterable[Hold], category: str, now: float) -> list[Hold]:
    """The holds that stop ``category`` at ``now``."""
    return [h for h in holds if h.blocks(category, now)]
