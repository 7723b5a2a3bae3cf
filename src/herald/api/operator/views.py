"""What the operator page shows of holds, audit entries, history and in-doubt deliveries.

Plain rows for the templates: times as people read them, in HERALD_DEFAULT_TIMEZONE to the
second (:func:`herald.display.timefmt.local_time`; each table's caption names the zone), free text
scrubbed of phone numbers and email addresses (:func:`herald.display.masking.scrub`); the templates
escape everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import redis
from sqlalchemy.exc import SQLAlchemyError

from herald import clock
from herald.config import Settings
from herald.delivery.indoubt import list_in_doubt
from herald.display.masking import scrub
from herald.display.timefmt import display_zone, local_time
from herald.holds.suppression import Hold, SuppressionStore
from herald.ledger.db import LedgerUnavailable
from herald.ledger.history import account_history
from herald.state import store

log = logging.getLogger(__name__)
HISTORY_LIMIT = 100
AUDIT_LIMIT = 100
IN_DOUBT_PAGE = 100


@dataclass(frozen=True)
class HoldRow:
    """One hold as the page shows it."""

    id: str
    categories: str
    reason: str
    agreement: str
    until: str
    by: str
    since: str
    active: bool


@dataclass(frozen=True)
class AuditRow:
    """One change to an account's holds: who, when, why, and which hold."""

    at: str
    action: str
    by: str
    reason: str
    hold_id: str
    categories: str
    until: str


@dataclass(frozen=True)
class HistoryRow:
    """One thing that happened to an account (a delivery's outcome or a hold change)."""

    at: str
    type: str
    what: str
    channel: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class InDoubtRow:
    """One in-doubt delivery."""

    key: str
    channel: str
    reason: str
    attempts: int
    accepted_at: str
    updated_at: str


@dataclass(frozen=True)
class AccountView:
    """Everything the account page shows."""

    account: str
    holds: list[HoldRow]
    history: list[HistoryRow]
    audit: list[AuditRow]
    history_error: str = ""


def hold_row(hold: Hold, now: float, zone: ZoneInfo) -> HoldRow:
    """A hold for display, its times in ``zone``."""
    return HoldRow(
        id=hold.id,
        categories=", ".join(hold.categories),
        reason=scrub(hold.reason),
        agreement=hold.agreement or "",
        until=local_time(hold.until, zone),
        by=hold.by,
        since=local_time(hold.created_at, zone),
        active=hold.active(now),
    )


def audit_row(entry: dict[str, str], zone: ZoneInfo) -> AuditRow:
    """An audit-stream entry for display (the hold after the change, or before a lift), its
    times in ``zone``."""
    hold = store.json_object(entry.get("after", "")) or store.json_object(entry.get("before", ""))
    return AuditRow(
        at=local_time(entry.get("at"), zone),
        action=entry.get("action", ""),
        by=entry.get("by", ""),
        reason=scrub(entry.get("reason", "")),
        hold_id=str(hold.get("id", "")),
        categories=", ".join(hold.get("categories", ["collection"])) if hold else "",
        until=local_time(hold.get("until"), zone),
    )


def account_view(settings: Settings, client: redis.Redis, account: str) -> AccountView:
    """The account's holds (oldest first), recent history and hold audit trail (newest first)."""
    holds = SuppressionStore(client)
    now = clock.time()
    zone = display_zone(settings)
    try:
        entries = account_history(settings, client, account, limit=HISTORY_LIMIT)
        history_error = ""
    except (LedgerUnavailable, SQLAlchemyError) as exc:
        # the holds and the audit trail come from Redis: still shown, so an operator can act
        log.warning("history of an account could not be read: %s", type(exc).__name__)
        entries = []
        history_error = "The history ledger cannot be read right now; the holds and audit trail are current."
    history = [
        HistoryRow(
            at=local_time(e.at, zone),
            type=e.type,
            what=(e.reminder_id or "") if e.type == "delivery" else (e.hold_id or ""),
            channel=e.channel or "",
            outcome=e.outcome,
            reason=scrub(e.reason),
        )
        for e in entries
    ]
    return AccountView(
        account=account,
        holds=[hold_row(h, now, zone) for h in holds.holds(account)],
        history=history,
        audit=[audit_row(e, zone) for e in holds.audit(account, count=AUDIT_LIMIT)],
        history_error=history_error,
    )


def in_doubt_rows(client: redis.Redis, offset: int, zone: ZoneInfo) -> tuple[list[InDoubtRow], int]:
    """A page of in-doubt deliveries (oldest first, times in ``zone``) and how many there are."""
    rows = [
        InDoubtRow(
            key=str(d["key"]),
            channel=str(d["channel"]),
            reason=scrub(d["reason"] or ""),
            attempts=int(d["attempts"]),
            accepted_at=local_time(d["accepted_at"], zone),
            updated_at=local_time(d["updated_at"], zone),
        )
        for d in list_in_doubt(client, offset=offset, count=IN_DOUBT_PAGE)
    ]
    return rows, in_doubt_count(client)


def in_doubt_count(client: redis.Redis) -> int:
    """How many deliveries are in doubt."""
    return int(client.zcard(store.IN_DOUBT))
