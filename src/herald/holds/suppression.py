"""Suppression holds: "do not send category C to account A (until T), because R".

An account can have any number of holds, each from a source — an agreement reference or an
operator — and lifting one leaves the others. Every change is appended to the
``herald:holds:audit`` stream (who, when, what, before and after).

Redis layout, per account:

| key | type | holds |
| --- | --- | --- |
| ``herald:hold:<account>`` | hash | hold id -> the hold as compact JSON; ``^<category>`` -> the mark |
| ``herald:holds:index`` | sorted set | accounts with holds (for listing) |
| ``herald:holds:audit`` | stream | every change (who, when, what, before and after) |
| ``herald:suppression:ready`` | string | present when the store is populated; without it nothing is sent |
| ``herald:holds:changes`` | hash | running counts of holds ``added``, ``replaced`` and ``lifted`` (metrics) |

Account ids live alone under ``herald:hold:``: no account id (``index``, ``audit``...) can name
another structure. Stores written before this layout (accounts under ``herald:holds:``, marker
``herald:suppression:marker``) send nothing until ``herald suppress init`` moves them
(:func:`migrate_layout`).

A mark (``^collection`` -> ``"<epoch seconds> <hold id>"``) records when the account's latest
hold of a category began. It outlives the hold: it implements "decided before the agreement". A
collection delivery accepted before the account's latest collection hold began is never sent,
even after the hold is lifted. Hold ids never begin with ``^``.

The stored JSON leaves out what the key already says (account, id), what can be derived
(source: an agreement hold names its agreement) and defaults (``categories`` when it is just
``collection``, an absent ``until``): one million holds fit in a few hundred MiB (see
``bench/holds_memory.py`` and the README).
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

from herald import clock
from herald.models import Category
from herald.state import store

HOLDS = store.PREFIX + "hold:"
MARK_PREFIX = "^"
INDEX = store.PREFIX + "holds:index"
AUDIT = store.PREFIX + "holds:audit"
MARKER = store.PREFIX + "suppression:ready"
CHANGES = store.PREFIX + "holds:changes"
"""Counts of holds added, replaced and lifted since the store began (``herald_hold_changes``):
three fields, kept by the same transaction as the change, so every writer counts."""
LEGACY_HOLDS = store.PREFIX + "holds:"
"""Where accounts' holds lived before their own namespace (beside the index and the audit)."""
LEGACY_MARKER = store.PREFIX + "suppression:marker"
AUDIT_MAXLEN = 10_000_000
COMPACT_VALUE = 256
"""``hash-max-listpack-value`` under which an account's holds hash stays compact (listpack): a
hold's JSON is about 100 bytes, so Redis's default of 64 stores each as a full hash table."""
CATEGORIES: tuple[Category, ...] = ("collection", "agreement", "transactional")


def holds_key(account: str) -> str:
    """The hash of an account's holds."""
    return HOLDS + account


def migrate_layout(client: redis.Redis) -> int:
    """Move a store written before accounts had their own namespace; returns the accounts moved.

    Only while the old marker is there and the new one is not: the new marker is set last, so
    until every account is moved, nothing is sent (fail closed). Safe to run again."""
    legacy = client.get(LEGACY_MARKER)
    if legacy is None or client.exists(MARKER):
        return 0
    moved = 0
    for start in range(0, 1 << 62, 1000):
        accounts = [
            a.decode() if isinstance(a, bytes) else str(a) for a in client.zrange(INDEX, start, start + 999)
        ]
        if not accounts:
            break
        with client.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hgetall(LEGACY_HOLDS + account)
            found = pipe.execute()
        with client.pipeline(transaction=True) as pipe:
            for account, raw in zip(accounts, found, strict=True):
                if raw and (LEGACY_HOLDS + account) not in (INDEX, AUDIT):
                    pipe.hset(holds_key(account), mapping=raw)
                    pipe.delete(LEGACY_HOLDS + account)
                    moved += 1
            pipe.execute()
    with client.pipeline(transaction=True) as pipe:
        pipe.set(MARKER, legacy)
        pipe.delete(LEGACY_MARKER)
        pipe.execute()
    return moved


def mark_field(category: str) -> str:
    """The field of an account's holds hash that holds the mark of ``category``."""
    return MARK_PREFIX + category


def split_holds(account: str, raw: dict[Any, Any]) -> tuple[list[Hold], dict[str, tuple[float, str]]]:
    """An account's holds hash, read: its holds (oldest first) and its marks by category."""
    holds: list[Hold] = []
    marks: dict[str, tuple[float, str]] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        if name.startswith(MARK_PREFIX):
            at, _, hold = (v.decode() if isinstance(v, bytes) else str(v)).partition(" ")
            marks[name[len(MARK_PREFIX) :]] = (float(at), hold)
        else:
            holds.append(Hold.from_json(v, id=name, account_id=account))
    holds.sort(key=lambda h: h.created_at)
    return holds, marks


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

    def _stored(self) -> dict[str, Any]:
        data: dict[str, Any] = {"reason": self.reason, "by": self.by, "at": round(self.created_at, 3)}
        if self.agreement:
            data["agreement"] = self.agreement
        if self.until is not None:
            data["until"] = self.until
        if tuple(self.categories) != ("collection",):
            data["categories"] = list(self.categories)
        return data

    def to_json(self) -> bytes:
        """The stored form: without the id and account (the hash and field name them)."""
        return orjson.dumps(self._stored())

    def to_record(self) -> bytes:
        """The stored form with the hold's id (the audit trail names the account beside it)."""
        return orjson.dumps({"id": self.id, **self._stored()})

    @classmethod
    def from_json(cls, raw: bytes | str, *, id: str, account_id: str) -> Hold:
        """Read the stored form of hold ``id`` of ``account_id``."""
        data: dict[str, Any] = orjson.loads(raw)
        agreement = data.get("agreement")
        return cls(
            id=id,
            account_id=account_id,
            source="agreement" if agreement else "operator",
            reason=data.get("reason", ""),
            categories=tuple(data.get("categories", ("collection",))),
            agreement=agreement,
            until=data.get("until"),
            by=data.get("by", ""),
            created_at=float(data.get("at", 0.0)),
        )


class UntilError(ValueError):
    """A hold's end that cannot be read: ``kind`` says why (``not_a_time``, ``no_offset``)."""

    def __init__(self, kind: Literal["not_a_time", "no_offset"], value: str) -> None:
        super().__init__(
            f"{value!r} is neither a date (2026-12-31) nor a time with an offset"
            if kind == "not_a_time"
            else f"{value!r} needs an offset, e.g. 2026-12-31T18:00:00+08:00"
        )
        self.kind = kind
        self.value = value


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
        raise UntilError("not_a_time", value) from None
    if moment.tzinfo is None:
        raise UntilError("no_offset", value)
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
        """Mark the store populated. Only after holds are loaded (or there are none yet); a
        store of the earlier layout is moved first (:func:`migrate_layout`) and keeps its mark."""
        if migrate_layout(self.redis) or self.redis.exists(MARKER):
            return
        self.redis.set(MARKER, orjson.dumps({"by": by, "at": clock.time()}))

    # -- reading -------------------------------------------------------------------------

    def holds(self, account: str) -> list[Hold]:
        """Every hold of ``account`` (lapsed ones included), oldest first."""
        holds, _ = split_holds(account, self.redis.hgetall(holds_key(account)))
        return holds

    def holds_of(self, accounts: list[str]) -> dict[str, list[Hold]]:
        """Every hold of each of ``accounts``, in one pipelined round trip (pages, exports)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hgetall(holds_key(account))
            answers = pipe.execute()
        return {a: split_holds(a, raw)[0] for a, raw in zip(accounts, answers, strict=True)}

    def marks(self, account: str) -> dict[str, tuple[float, str]]:
        """When the account's latest hold per category began, and its id."""
        _, marks = split_holds(account, self.redis.hgetall(holds_key(account)))
        return marks

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
        """Add (or replace, same id) a hold; records the mark and the audit entry atomically.

        A new hold begins at Redis's clock, the clock deliveries are accepted on: a delivery
        accepted before it is ``superseded`` whatever the clocks of the hosts involved."""
        now = store.redis_now(self.redis)
        if not hold.created_at:
            hold = Hold(**{**asdict(hold), "created_at": now})
        before_raw = self.redis.hget(holds_key(hold.account_id), hold.id)
        before = Hold.from_json(before_raw, id=hold.id, account_id=hold.account_id) if before_raw else None
        if (
            before is not None
            and before.to_json() == Hold(**{**asdict(hold), "created_at": before.created_at}).to_json()
        ):
            return Change("unchanged", hold.account_id, before, before)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(holds_key(hold.account_id), hold.id, hold.to_json())
            pipe.hset(holds_key(hold.account_id), mapping=_marks(hold))
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
            pipe.hincrby(CHANGES, "added" if before is None else "replaced", 1)
            pipe.execute()
        return Change("added" if before is None else "replaced", hold.account_id, before, hold)

    def add_many(self, holds: list[Hold]) -> list[Change]:
        """Add holds in two pipelined round trips (imports); unchanged ones are left alone."""
        now = store.redis_now(self.redis)
        with self.redis.pipeline(transaction=False) as pipe:
            for h in holds:
                pipe.hget(holds_key(h.account_id), h.id)
            existing = pipe.execute()
        changes: list[Change] = []
        with self.redis.pipeline(transaction=True) as pipe:
            for h, raw in zip(holds, existing, strict=True):
                before = Hold.from_json(raw, id=h.id, account_id=h.account_id) if raw else None
                hold = Hold(
                    **{**asdict(h), "created_at": before.created_at if before else (h.created_at or now)}
                )
                if before is not None and before.to_json() == hold.to_json():
                    changes.append(Change("unchanged", h.account_id, before, before))
                    continue
                pipe.hset(holds_key(hold.account_id), hold.id, hold.to_json())
                if before is None:
                    pipe.hset(holds_key(hold.account_id), mapping=_marks(hold))
                pipe.zadd(INDEX, {hold.account_id: 0})
                action = "add" if before is None else "replace"
                entry = _audit(action, hold.account_id, hold.by, before, hold, hold.reason)
                pipe.xadd(AUDIT, entry, maxlen=AUDIT_MAXLEN, approximate=True)
                changes.append(
                    Change("added" if before is None else "replaced", hold.account_id, before, hold)
                )
            for change in ("added", "replaced"):
                if count := sum(1 for c in changes if c.action == change):
                    pipe.hincrby(CHANGES, change, count)
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
            pipe.hincrby(CHANGES, "lifted", len(chosen))
            pipe.execute()
        return Change("lifted", account, lifted=chosen)


def compactness_advice(client: redis.Redis) -> str | None:
    """Advice when Redis would store each account's holds as a full hash table (more memory)."""
    try:
        answer: Any = client.config_get("hash-max-listpack-value")
        value = int(next(iter(answer.values())))
    except (redis.ResponseError, StopIteration, ValueError):
        return None  # CONFIG is often disabled on managed Redis: nothing to say
    if value >= COMPACT_VALUE:
        return None
    return (
        f"Redis has hash-max-listpack-value {value}; with {COMPACT_VALUE} (deploy/redis.conf) "
        "holds take about 40% less memory"
    )


def _marks(hold: Hold) -> dict[Any, Any]:
    """The marks a new hold sets: it is now the latest hold of each of its categories."""
    return {mark_field(c): f"{hold.created_at:.3f} {hold.id}" for c in hold.categories}


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
        "before": before.to_record() if before else "",
        "after": after.to_record() if after else "",
    }


def active_holds(holds: Iterable[Hold], category: str, now: float) -> list[Hold]:
    """The holds that stop ``category`` at ``now``."""
    return [h for h in holds if h.blocks(category, now)]
