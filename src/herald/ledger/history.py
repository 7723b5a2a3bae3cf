"""An account's history: every delivery outcome and every hold change, newest first.

Read by ``herald history``, ``GET /v1/accounts/{account_id}/history`` and the operator page.

The durable part is the ledger (``herald.ledger``, written by ``herald ledger``); the part the
ledger does not have yet is still in the Redis streams (``herald:events``,
``herald:holds:audit``) after the ledger's checkpoints. Both are read and merged, each entry
once (its ``event_id`` names the stream entry it came from). Reading order makes the merge
whole even while the writer runs: checkpoints first, then the streams' tails, then the ledger
(an entry trimmed from Redis meanwhile was committed to the ledger before it was trimmed).

Pages: entries come newest first, ordered by their stream entry id; ``before`` (the
``event_id`` of the last entry of the previous page) asks for the entries older than it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import redis

from herald.config import Settings
from herald.holds import suppression
from herald.ledger.db import open_ledger
from herald.ledger.reader import DELIVERY_RANK, HOLD_RANK, Position, delivery_rows, hold_rows
from herald.ledger.writer import read_checkpoints, split_id
from herald.state import store

SCAN_LIMIT = 100_000
"""At most this many of the latest stream entries are scanned for one account."""
MAX_LIMIT = 1000
"""The most entries one call returns."""
_CURSOR = re.compile(r"^([ea]):(\d{1,20})-(\d{1,20})$")


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to an account.

    ``type`` is ``delivery`` (``outcome`` is the delivery's outcome, or ``delivered`` /
    ``undelivered`` for a provider's receipt) or ``hold`` (``outcome`` is the change:
    ``add``, ``replace`` or ``lift``, and ``hold_id`` names the hold)."""

    event_id: str
    at: str
    type: Literal["delivery", "hold"]
    account_id: str
    outcome: str
    reason: str
    reminder_id: str | None = None
    channel: str | None = None
    kind: str | None = None
    category: str | None = None
    by: str | None = None
    hold_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready fields."""
        return asdict(self)

    @property
    def position(self) -> Position:
        """Where the entry sits in the history (for ordering and pages)."""
        return parse_cursor(self.event_id)


_ID_PART_MAX = 2**63 - 1
"""The largest time or sequence an event id may hold: the ledger keeps them as signed 64-bit
integers (Redis allows unsigned ones, which no clock comes near)."""


def parse_cursor(event_id: str) -> Position:
    """The position of an ``event_id`` (``e:<ms>-<seq>`` or ``a:<ms>-<seq>``).

    Raises ``ValueError`` for anything else."""
    match = _CURSOR.match(event_id.strip())
    if match is None:
        raise ValueError(f"{event_id!r} is not an event id (e.g. e:1767225600000-0 or a:1767225600000-0)")
    kind, ms, seq = match.groups()
    if max(int(ms), int(seq)) > _ID_PART_MAX:
        raise ValueError(f"{event_id!r} is not an event id: its numbers are beyond any stream id")
    return Position(int(ms), int(seq), DELIVERY_RANK if kind == "e" else HOLD_RANK)


def next_before(entries: list[HistoryEntry], limit: int) -> str | None:
    """The ``before`` of the next page: the last entry's id when the page is full."""
    return entries[-1].event_id if entries and len(entries) >= limit else None


def _t(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _delivery_entry(event_id: str, account_id: str, fields: dict[str, str]) -> HistoryEntry:
    receipt = fields.get("receipt", "")
    outcome, reason = fields.get("outcome", ""), fields.get("reason", "")
    if receipt and not outcome:
        code = fields.get("code", "")
        outcome, reason = receipt, f"provider receipt (code {code})" if code else "provider receipt"
    return HistoryEntry(
        event_id=event_id,
        at=fields.get("at", ""),
        type="delivery",
        account_id=account_id,
        outcome=outcome,
        reason=reason,
        reminder_id=fields.get("reminder_id") or None,
        channel=fields.get("channel") or None,
        kind=fields.get("kind") or None,
        category=fields.get("category") or None,
    )


def _hold_id(before: str, after: str) -> str | None:
    raw = after or before
    if not raw:
        return None
    try:
        return str(orjson.loads(raw).get("id") or "") or None
    except (orjson.JSONDecodeError, AttributeError):
        return None


def _scan(
    client: redis.Redis, stream: str, after: str | None, before: Position | None, rank: int
) -> list[tuple[str, dict[str, str]]]:
    """Entries of ``stream`` newer than ``after`` and older than ``before``, newest first
    (at most ``SCAN_LIMIT`` looked at)."""
    lowest = "(" + after if after else "-"
    top = "+" if before is None else f"{before.ms}-{before.seq}"
    out: list[tuple[str, dict[str, str]]] = []
    scanned = 0
    while scanned < SCAN_LIMIT:
        entries = client.xrevrange(stream, max=top, min=lowest, count=2000)
        if not entries:
            break
        scanned += len(entries)
        for entry_id, raw in entries:
            ident = _t(entry_id)
            if before is not None and Position(*split_id(ident), rank) >= before:
                continue
            out.append((ident, {_t(k): _t(v) for k, v in (raw or {}).items()}))
        top = "(" + _t(entries[-1][0])
    return out


def recent_deliveries(
    client: redis.Redis,
    account_id: str,
    limit: int,
    *,
    after: str | None = None,
    before: Position | None = None,
) -> list[HistoryEntry]:
    """Delivery outcomes of ``account_id`` still in the events stream (after the entry id
    ``after``, older than ``before``), newest first."""
    out: list[HistoryEntry] = []
    for ident, fields in _scan(client, store.EVENTS, after, before, DELIVERY_RANK):
        if fields.get("account_id") == account_id:
            out.append(_delivery_entry(f"e:{ident}", account_id, fields))
            if len(out) >= limit:
                break
    return out


def recent_hold_changes(
    client: redis.Redis,
    account_id: str,
    limit: int,
    *,
    after: str | None = None,
    before: Position | None = None,
) -> list[HistoryEntry]:
    """Hold changes of ``account_id`` still in the audit stream (after the entry id ``after``,
    older than ``before``), newest first."""
    out: list[HistoryEntry] = []
    for ident, row in _scan(client, suppression.AUDIT, after, before, HOLD_RANK):
        if row.get("account_id") != account_id:
            continue
        out.append(
            HistoryEntry(
                event_id=f"a:{ident}",
                at=row.get("at", ""),
                type="hold",
                account_id=account_id,
                outcome=row.get("action", ""),
                reason=row.get("reason", ""),
                by=row.get("by") or None,
                hold_id=_hold_id(row.get("before", ""), row.get("after", "")),
            )
        )
        if len(out) >= limit:
            break
    return out


def _iso(moment: datetime) -> str:
    """A ledger time (UTC, without a zone) as the streams write it."""
    return moment.replace(tzinfo=UTC).isoformat(timespec="milliseconds")


def _from_ledger_delivery(row: dict[str, Any]) -> HistoryEntry:
    fields = {
        "at": _iso(row["at"]),
        "outcome": row["outcome"],
        "reason": row["reason"],
        "receipt": row["receipt"],
        "code": row["receipt_code"],
        "reminder_id": row["reminder_id"],
        "channel": row["channel"],
        "kind": row["kind"],
        "category": row["category"],
    }
    return _delivery_entry(f"e:{row['entry_id']}", row["account_id"], fields)


def _from_ledger_hold(row: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        event_id=f"a:{row['entry_id']}",
        at=_iso(row["at"]),
        type="hold",
        account_id=row["account_id"],
        outcome=row["action"],
        reason=row["reason"],
        by=row["actor"] or None,
        hold_id=row["hold_id"] or None,
    )


def account_history(
    settings: Settings,
    client: redis.Redis,
    account_id: str,
    *,
    limit: int = 100,
    before: str | None = None,
) -> list[HistoryEntry]:
    """The latest ``limit`` entries of ``account_id``'s history (older than the event id
    ``before``), newest first.

    Raises ``ValueError`` for a malformed ``before``, ``herald.ledger.db.LedgerUnavailable``
    when the ledger cannot be read and ``redis.RedisError`` when Redis cannot."""
    limit = max(1, min(limit, MAX_LIMIT))
    cursor = parse_cursor(before) if before else None
    engine = open_ledger(settings.ledger_url)
    marks = read_checkpoints(engine)
    tail = recent_deliveries(
        client, account_id, limit, after=marks.get(store.EVENTS), before=cursor
    ) + recent_hold_changes(client, account_id, limit, after=marks.get(suppression.AUDIT), before=cursor)
    stored = [_from_ledger_delivery(r) for r in delivery_rows(engine, account_id, limit, cursor)]
    stored += [_from_ledger_hold(r) for r in hold_rows(engine, account_id, limit, cursor)]
    merged = {e.event_id: e for e in tail}
    merged.update({e.event_id: e for e in stored})  # the ledger's copy wins (they are the same)
    return sorted(merged.values(), key=lambda e: e.position, reverse=True)[:limit]
