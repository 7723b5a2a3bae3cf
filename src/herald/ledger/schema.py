"""The ledger's tables.

| table | one row per | unique event id |
| --- | --- | --- |
| ``delivery_events`` | entry of ``herald:events`` (an outcome, or a receipt) | (stream, entry_id) |
| ``hold_events`` | entry of ``herald:holds:audit`` (a hold added, replaced, lifted) | (stream, entry_id) |
| ``optout_events`` | entry of ``herald:optout:audit`` (opted out, or back in) | (stream, entry_id) |
| ``ledger_checkpoints`` | stream: the last entry id the ledger has | stream |

``ms`` and ``seq`` are the two halves of the Redis entry id (``<ms>-<seq>``): the order in
which things happened, exactly. ``at`` is the time herald recorded (UTC, without a zone); it
decides retention. Text columns have no length limit: an entry Redis accepted is never refused.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, Index, MetaData, String, Table, Text

metadata = MetaData()

delivery_events = Table(
    "delivery_events",
    metadata,
    Column("stream", String, primary_key=True),
    Column("entry_id", String, primary_key=True),
    Column("ms", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("account_id", String, nullable=False),
    Column("delivery_key", String, nullable=False),
    Column("reminder_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("category", String, nullable=False),
    Column("outcome", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("receipt", String, nullable=False),
    Column("receipt_code", String, nullable=False),
    Column("extra", Text, nullable=True, comment="other fields of the entry, as JSON"),
    Index("ix_delivery_events_account", "account_id", "ms", "seq"),
    Index("ix_delivery_events_at", "at"),
)

hold_events = Table(
    "hold_events",
    metadata,
    Column("stream", String, primary_key=True),
    Column("entry_id", String, primary_key=True),
    Column("ms", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("account_id", String, nullable=False),
    Column("action", String, nullable=False),
    Column("actor", String, nullable=False, comment="who (the entry's `by`)"),
    Column("reason", Text, nullable=False),
    Column("hold_id", String, nullable=False),
    Column("until", Float, nullable=True, comment="the hold's end after the change (epoch s)"),
    Column("before_json", Text, nullable=False, comment="the hold before the change ('' if none)"),
    Column("after_json", Text, nullable=False, comment="the hold after the change ('' if lifted)"),
    Column("extra", Text, nullable=True, comment="other fields of the entry, as JSON"),
    Index("ix_hold_events_account", "account_id", "ms", "seq"),
    Index("ix_hold_events_hold", "account_id", "hold_id"),
    Index("ix_hold_events_at", "at"),
)

optout_events = Table(
    "optout_events",
    metadata,
    Column("stream", String, primary_key=True),
    Column("entry_id", String, primary_key=True),
    Column("ms", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("channel", String, nullable=False),
    Column("address", String, nullable=False, comment="as stored in the opt-out set (normalized)"),
    Column("action", String, nullable=False, comment="`add` (opted out) or `remove` (back in)"),
    Column("source", String, nullable=False, comment="operator, provider, sms-keyword, unsubscribe-link"),
    Column("actor", String, nullable=False, comment="who (the entry's `by`)"),
    Column("extra", Text, nullable=True, comment="other fields of the entry, as JSON"),
    Index("ix_optout_events_address", "channel", "address"),
    Index("ix_optout_events_at", "at"),
)

checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("stream", String, primary_key=True),
    Column("last_id", String, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
