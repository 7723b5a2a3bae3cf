"""Reading the ledger: an account's delivery outcomes and hold changes, newest first.

Entries are ordered by their stream entry id (``<ms>-<seq>``), hold changes before delivery
events at the very same id; a page ends before a ``Position`` (the last entry of the
previous page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, and_, or_, select

from herald.ledger.schema import delivery_events, hold_events

HOLD_RANK = 0
DELIVERY_RANK = 1


@dataclass(frozen=True, order=True)
class Position:
    """Where an entry sits in an account's history: its entry id, and which stream."""

    ms: int
    seq: int
    rank: int


def _older(table: Table, rank: int, before: Position) -> ColumnElement[bool]:
    ms, seq = table.c.ms, table.c.seq
    same_id = [and_(ms == before.ms, seq == before.seq)] if rank < before.rank else []
    return or_(ms < before.ms, and_(ms == before.ms, seq < before.seq), *same_id)


def _rows(
    table: Table, rank: int, engine: Engine, account_id: str, limit: int, before: Position | None
) -> list[dict[str, Any]]:
    query = select(table).where(table.c.account_id == account_id)
    if before is not None:
        query = query.where(_older(table, rank, before))
    query = query.order_by(table.c.ms.desc(), table.c.seq.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def delivery_rows(
    engine: Engine, account_id: str, limit: int, before: Position | None = None
) -> list[dict[str, Any]]:
    """The latest ``limit`` rows of ``delivery_events`` of ``account_id`` (older than ``before``)."""
    return _rows(delivery_events, DELIVERY_RANK, engine, account_id, limit, before)


def hold_rows(
    engine: Engine, account_id: str, limit: int, before: Position | None = None
) -> list[dict[str, Any]]:
    """The latest ``limit`` rows of ``hold_events`` of ``account_id`` (older than ``before``)."""
    return _rows(hold_events, HOLD_RANK, engine, account_id, limit, before)
