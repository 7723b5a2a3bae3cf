"""The ledger writer on SQLite and PostgreSQL: copies, idempotency, crashes, trimming, retention."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis
import time_machine
from sqlalchemy import Connection, Engine, select

from herald import clock
from herald.holds import optouts, suppression
from herald.holds.agreements import apply_event
from herald.holds.suppression import Hold, SuppressionStore
from herald.ledger.schema import checkpoints, delivery_events, hold_events
from herald.ledger.writer import LedgerWriter, read_checkpoints
from herald.state import store
from tests.ledger.helpers import add_event, count, entry_ids, forget_checkpoints, make_writer, stream_ids


class CrashBeforeCheckpoint(LedgerWriter):
    """Dies inside the transaction, after the rows were inserted, before the checkpoint."""

    def save_checkpoint(self, conn: Connection, stream: str, last_id: str) -> None:
        raise RuntimeError("killed between insert and checkpoint")


class CrashBeforeTrim(LedgerWriter):
    """Dies after the transaction committed, before the stream is trimmed."""

    def trim(self, stream: str, last_id: str) -> int:
        raise RuntimeError("killed before the trim")


def test_outcomes_and_hold_changes_are_copied_in_order_and_events_trimmed(
    client: redis.Redis, engine: Engine
) -> None:
    sent = add_event(client, "acct-1", "sent")
    receipt = add_event(client, "acct-1", "", receipt="delivered", code="0")
    suppressed = add_event(client, "acct-2", "suppressed", reason="held: hold agreement:AGR-1")
    holds = SuppressionStore(client)
    apply_event(holds, "acct-2", "AGR-1", "signed", by="agreements-service")
    apply_event(holds, "acct-2", "AGR-1", "completed", by="agreements-service")
    audit = stream_ids(client, suppression.AUDIT)

    report = make_writer(client, engine).drain()

    assert report.copied == {store.EVENTS: 3, suppression.AUDIT: 2, optouts.AUDIT: 0}
    assert entry_ids(engine, delivery_events) == [sent, receipt, suppressed]
    assert entry_ids(engine, hold_events) == audit
    assert client.xlen(store.EVENTS) == 0  # all in the ledger: trimmed
    assert stream_ids(client, suppression.AUDIT) == audit  # the audit stream is left alone
    assert read_checkpoints(engine) == {store.EVENTS: suppressed, suppression.AUDIT: audit[-1]}
    with engine.connect() as conn:
        rows = {r.entry_id: r for r in conn.execute(select(delivery_events))}
        changes = list(conn.execute(select(hold_events).order_by(hold_events.c.ms, hold_events.c.seq)))
    assert rows[sent].account_id == "acct-1"
    assert rows[sent].outcome == "sent"
    assert rows[receipt].receipt == "delivered"
    assert rows[receipt].receipt_code == "0"
    assert rows[suppressed].reason == "held: hold agreement:AGR-1"
    assert abs(rows[sent].at.replace(tzinfo=UTC).timestamp() - clock.time()) < 3600
    assert [c.action for c in changes] == ["add", "lift"]
    assert {c.hold_id for c in changes} == {"agreement:AGR-1"}
    assert changes[0].actor == "agreements-service"
    assert changes[0].after_json
    assert not changes[1].after_json


def test_the_same_entries_written_twice_are_one_row_each(client: redis.Redis, engine: Engine) -> None:
    ids = [add_event(client, f"acct-{i % 3}") for i in range(7)]
    SuppressionStore(client).add(Hold(id="operator:x1", account_id="acct-1", source="operator", reason="r"))

    with pytest.raises(RuntimeError, match="before the trim"):
        CrashBeforeTrim(client, engine, batch=1000, retention_days=1830).drain()
    assert stream_ids(client, store.EVENTS) == ids  # committed, not trimmed
    assert entry_ids(engine, delivery_events) == ids

    make_writer(client, engine).drain()  # nothing new: what the crash left is trimmed now
    assert client.xlen(store.EVENTS) == 0
    client.delete(store.EVENTS)
    for entry_id in ids:  # as if the trim had never happened, and the checkpoint were lost
        client.xadd(store.EVENTS, {"account_id": "acct-1", "outcome": "sent"}, id=entry_id)
    forget_checkpoints(engine)

    report = make_writer(client, engine, batch=3).drain()

    assert report.copied[store.EVENTS] == 7  # read again...
    assert entry_ids(engine, delivery_events) == ids  # ...and still one row each
    assert count(engine, hold_events) == 1
    assert client.xlen(store.EVENTS) == 0


def test_a_crash_between_insert_and_checkpoint_leaves_nothing_behind(
    client: redis.Redis, engine: Engine
) -> None:
    ids = [add_event(client, "acct-1") for _ in range(4)]

    with pytest.raises(RuntimeError, match="between insert and checkpoint"):
        CrashBeforeCheckpoint(client, engine, batch=1000, retention_days=1830).step(store.EVENTS)

    assert count(engine, delivery_events) == 0  # the insert was rolled back with the checkpoint
    assert read_checkpoints(engine) == {}
    assert stream_ids(client, store.EVENTS) == ids  # nothing trimmed
    make_writer(client, engine).drain()
    assert entry_ids(engine, delivery_events) == ids
    assert client.xlen(store.EVENTS) == 0


def test_the_events_stream_is_trimmed_only_up_to_the_ledger(client: redis.Redis, engine: Engine) -> None:
    ids = [add_event(client, "acct-1") for _ in range(5)]
    writer = make_writer(client, engine, batch=2)

    writer.step(store.EVENTS)
    assert entry_ids(engine, delivery_events) == ids[:2]
    assert stream_ids(client, store.EVENTS) == ids[2:]

    later = add_event(client, "acct-1")
    writer.step(store.EVENTS)
    assert stream_ids(client, store.EVENTS) == [*ids[4:], later]
    assert set(stream_ids(client, store.EVENTS)).isdisjoint(entry_ids(engine, delivery_events))


def test_a_stream_restarted_below_the_checkpoint_is_read_from_its_start(
    client: redis.Redis, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis lost the stream and the new server's clock is behind: new ids are below the
    checkpoint. They are copied, not skipped, and not trimmed unread."""
    ahead = int((clock.time() + 3600) * 1000)
    client.xadd(store.EVENTS, {"account_id": "acct-1", "outcome": "sent", "at": ""}, id=f"{ahead}-0")
    make_writer(client, engine).drain()
    client.delete(store.EVENTS)  # lost
    ids = [add_event(client, "acct-1") for _ in range(3)]  # below the checkpoint

    with caplog.at_level(logging.WARNING, logger="herald.ledger"):
        make_writer(client, engine).drain()

    assert entry_ids(engine, delivery_events) == [*ids, f"{ahead}-0"]
    assert client.xlen(store.EVENTS) == 0
    assert "restarted below the ledger's checkpoint" in caplog.text


def test_a_writer_falling_behind_the_events_maxlen_says_so(
    client: redis.Redis, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with client.pipeline(transaction=False) as pipe:
        for _ in range(950):
            pipe.xadd(store.EVENTS, {"account_id": "acct-1", "outcome": "sent"})
        pipe.execute()
    writer = LedgerWriter(client, engine, batch=500, retention_days=1830, events_maxlen=1000)

    with caplog.at_level(logging.WARNING, logger="herald.ledger"):
        writer.drain()
        assert "falling behind" in caplog.text
        caplog.clear()
        writer.drain()  # caught up: no more warnings
    assert caplog.text == ""
    assert count(engine, delivery_events) == 950


def test_retention_deletes_old_rows_but_keeps_each_hold_still_in_force(
    client: redis.Redis, engine: Engine
) -> None:
    holds = SuppressionStore(client)
    start = clock.time()
    old = add_event(client, "acct-1", "sent")
    holds.add(Hold(id="operator:forever", account_id="acct-1", source="operator", reason="dispute"))
    apply_event(holds, "acct-1", "AGR-1", "signed")
    apply_event(holds, "acct-1", "AGR-1", "completed")
    holds.add(
        Hold(
            id="operator:month", account_id="acct-2", source="operator", reason="r", until=start + 30 * 86400
        )
    )
    writer = make_writer(client, engine)
    writer.drain()
    assert writer.prune().deliveries == 0  # nothing is old yet

    with time_machine.travel(datetime.fromtimestamp(start, UTC) + timedelta(days=1831), tick=False):
        recent = add_event(client, "acct-1", "sent")
        writer.drain()
        pruned = writer.prune()

    assert (pruned.deliveries, pruned.holds, pruned.optouts) == (1, 3, 0)
    assert entry_ids(engine, delivery_events) == [recent]
    assert old not in entry_ids(engine, delivery_events)
    with engine.connect() as conn:
        kept = [(r.hold_id, r.action) for r in conn.execute(select(hold_events))]
    assert kept == [("operator:forever", "add")]  # lifted and lapsed holds went; this one is in force


def test_checkpoints_are_kept_in_the_ledger(client: redis.Redis, engine: Engine) -> None:
    add_event(client, "acct-1")
    last = add_event(client, "acct-1")
    make_writer(client, engine).drain()
    with engine.connect() as conn:
        row = conn.execute(select(checkpoints).where(checkpoints.c.stream == store.EVENTS)).one()
    assert row.last_id == last
    assert not make_writer(client, engine).drain().total  # a new writer starts where it stopped
