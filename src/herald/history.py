"""An account's history: every delivery outcome and every hold change, newest first.

Read by ``herald history``, ``GET /v1/accounts/{account_id}/history`` and the operator page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson
import redis

from herald import store
from herald.config import Settings
from herald.suppression import SuppressionStore

SCAN_LIMIT = 100_000
"""At most this many of the latest stream entries are scanned for one account."""


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to an account.

    ``type`` is ``delivery`` (``outcome`` is the delivery's outcome) or ``hold`` (``outcome`` is
    ``add`` or ``lift`` and ``hold_id`` names the hold)."""

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


def _t(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def recent_deliveries(client: redis.Redis, account_id: str, limit: int) -> list[HistoryEntry]:
    """Delivery outcomes of ``account_id`` still in the events stream, newest first."""
    out: list[HistoryEntry] = []
    last, scanned = "+", 0
    while len(out) < limit and scanned < SCAN_LIMIT:
        entries = client.xrevrange(store.EVENTS, max=last, count=2000)
        if not entries:
            break
        scanned += len(entries)
        for entry_id, raw in entries:
            fields = {_t(k): _t(v) for k, v in (raw or {}).items()}
            if fields.get("account_id") != account_id:
                continue
            out.append(
                HistoryEntry(
                    event_id=f"e:{_t(entry_id)}",
                    at=fields.get("at", ""),
                    type="delivery",
                    account_id=account_id,
                    outcome=fields.get("outcome", ""),
                    reason=fields.get("reason", ""),
                    reminder_id=fields.get("reminder_id") or None,
                    channel=fields.get("channel") or None,
                    kind=fields.get("kind") or None,
                    category=fields.get("category") or None,
                )
            )
        last = "(" + _t(entries[-1][0])
    return out[:limit]


def recent_hold_changes(client: redis.Redis, account_id: str, limit: int) -> list[HistoryEntry]:
    """Hold changes of ``account_id`` still in the audit stream, newest first."""
    out = []
    for row in SuppressionStore(client).audit(account_id, count=limit):
        after = row.get("after") or row.get("before") or ""
        hold_id = None
        if after:
            hold_id = str(orjson.loads(after).get("id") or "") or None
        out.append(
            HistoryEntry(
                event_id=f"a:{row['id']}",
                at=row.get("at", ""),
                type="hold",
                account_id=account_id,
                outcome=row.get("action", ""),
                reason=row.get("reason", ""),
                by=row.get("by") or None,
                hold_id=hold_id,
            )
        )
    return out


def account_history(
    settings: Settings, client: redis.Redis, account_id: str, *, limit: int = 100
) -> list[HistoryEntry]:
    """The latest ``limit`` entries of ``account_id``'s history, newest first."""
    del settings  # the durable ledger's location, once it is read here
    merged = recent_deliveries(client, account_id, limit) + recent_hold_changes(client, account_id, limit)
    merged.sort(key=lambda e: e.at, reverse=True)
    return merged[:limit]
