"""Helpers of the ledger's suites: stream entries, row counts, a producer without a broker."""

from __future__ import annotations

import uuid
from typing import Any

import redis
from sqlalchemy import Engine, Table, func, select

from herald import clock
from herald.ledger.schema import checkpoints
from herald.ledger.writer import LedgerWriter
from herald.state import store


def add_event(
    client: redis.Redis,
    account: str,
    outcome: str = "sent",
    *,
    at: float | None = None,
    channel: str = "sms",
    reason: str = "",
    **more: str,
) -> str:
    """Append an outcome to herald:events in the format of the Lua scripts' ``finish``."""
    reminder = f"r-{uuid.uuid4().hex[:10]}"
    fields: dict[Any, Any] = {
        "key": f"{reminder}:{channel}",
        "reminder_id": reminder,
        "account_id": account,
        "channel": channel,
        "kind": "overdue_notice",
        "category": "collection",
        "outcome": outcome,
        "reason": reason,
        "at": store.iso(clock.time() if at is None else at),
        **more,
    }
    entry_id = client.xadd(store.EVENTS, fields)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def stream_ids(client: redis.Redis, stream: str) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i, _ in client.xrange(stream) or []]


def make_writer(
    client: redis.Redis, engine: Engine, *, batch: int = 1000, retention_days: int = 1830
) -> LedgerWriter:
    return LedgerWriter(client, engine, batch=batch, retention_days=retention_days)


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def entry_ids(engine: Engine, table: Table) -> list[str]:
    """The entry ids of ``table``'s rows, in stream order (duplicates would show)."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(table.c.entry_id).order_by(table.c.ms, table.c.seq))]


def forget_checkpoints(engine: Engine) -> None:
    """As if the writer had never committed a checkpoint (it reads everything again)."""
    with engine.begin() as conn:
        conn.execute(checkpoints.delete())
