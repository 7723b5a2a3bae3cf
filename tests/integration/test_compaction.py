"""Finished deliveries leave Redis once the ledger has them (``lua/compact.lua``).

The pipeline runs in this process (one worker process's runtime, the outbox provider) against a
redis-server of its own; the ledger is a SQLite file; time moves with ``HERALD_CLOCK_OFFSET``,
which every script adds to Redis's clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, select

from herald.config import Settings
from herald.delivery.pipeline import BatchReport, process_batch
from herald.delivery.runtime import Runtime
from herald.intake.cancellation import cancel
from herald.ledger.db import close_ledgers, open_ledger
from herald.ledger.schema import delivery_events
from herald.ledger.writer import LedgerWriter
from herald.models import Channel
from herald.state import store
from herald.state.receipts import Receipts
from herald.state.status import read_status
from tests.harness import Unpublished, make_in_doubt, make_reminder, redis_of_its_own

pytestmark = pytest.mark.integration

KEEP = 3600  # HERALD_COMPACT_AFTER's default


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_of_its_own(tmp_path_factory.mktemp("compaction")) as url:
        yield url


@pytest.fixture
def settings(redis_url: str, repo_root: Path, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path / "outbox",
        ledger_url=f"sqlite:///{tmp_path}/ledger.sqlite3",
        send_window="00:00-24:00",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    yield open_ledger(settings.ledger_url)
    close_ledgers()


@pytest.fixture
def writer(client: redis.Redis, engine: Engine, settings: Settings) -> LedgerWriter:
    return LedgerWriter(
        redis.Redis.from_url(settings.redis_url), engine, batch=1000, retention_days=30, compact_after=KEEP
    )


def _run(settings: Settings, channel: Channel, keys: list[str]) -> BatchReport:
    """One batch through the pipeline, as a worker process runs a message of ``keys``."""

    async def go() -> BatchReport:
        rt = Runtime(settings)
        try:
            return await process_batch(rt, channel, keys)
        finally:
            await rt.close()

    return asyncio.run(go())


def _sent_lines(settings: Settings, channel: str, reminder_id: str) -> list[str]:
    path = settings.outbox_dir / f"{channel}.jsonl"
    return [line for line in path.read_text().splitlines() if reminder_id in line] if path.exists() else []


def _reminder(channels: list[str]) -> dict[str, Any]:
    """A reminder on an account of its own (no duplicate window or cap in the way)."""
    reminder = make_reminder(channels=channels)
    reminder["account_id"] = f"acct-{reminder['id']}"
    return reminder


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(seconds))


def test_a_finished_delivery_leaves_redis_an_hour_after_the_ledger_copied_it_and_its_status_still_answers(
    settings: Settings, client: redis.Redis, writer: LedgerWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    reminder = _reminder(["sms", "email"])
    rid = reminder["id"]
    assert Unpublished(settings).enqueue(reminder).status == "accepted"
    for channel in ("sms", "email"):
        _run(settings, channel, [f"{rid}:{channel}"])
    before = read_status(client, rid)
    assert [d["outcome"] for d in before["deliveries"]] == ["sent", "sent"]

    report = writer.drain()
    assert report.copied[store.EVENTS] == 2
    assert report.compacted == 0  # copied, but kept whole for HERALD_COMPACT_AFTER
    assert client.exists(store.delivery_redis_key(f"{rid}:sms"), store.body_key(rid)) == 2

    _later(monkeypatch, KEEP - 60)
    assert writer.drain().compacted == 0
    _later(monkeypatch, KEEP + 1)
    assert writer.drain().compacted == 2

    assert (
        client.exists(store.delivery_redis_key(f"{rid}:sms"), store.delivery_redis_key(f"{rid}:email")) == 0
    )
    assert not client.exists(store.body_key(rid))
    assert client.zcard(store.COPIED) == 0
    assert read_status(client, rid) == before  # every field, times and attempts included
    assert client.object("encoding", store.reminder_key(rid)) == "listpack"
    assert client.ttl(store.reminder_key(rid)) > 86400  # idempotency lasts as long as before

    again = Unpublished(settings)
    assert again.enqueue(reminder).status == "duplicate"
    assert (
        again.enqueue({**reminder, "data": {**reminder["data"], "amount_due": "1.00"}}).status == "conflict"
    )
    assert cancel(client, rid) == {f"{rid}:sms": "sent", f"{rid}:email": "sent"}

    # the broker delivers the old message again: the delivery is gone, nothing is sent twice
    _run(settings, "sms", [f"{rid}:sms"])
    assert len(_sent_lines(settings, "sms", rid)) == 1


def test_deliveries_in_doubt_dead_or_still_waiting_stay_whole_and_the_body_stays_for_the_one_waiting(
    settings: Settings, client: redis.Redis, writer: LedgerWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    doubtful = make_in_doubt(settings, account=f"acct-doubt-{uuid.uuid4().hex[:8]}")
    reminder = _reminder(["sms", "email"])
    rid = reminder["id"]
    dying = _reminder(["sms"])
    assert Unpublished(settings).enqueue_many([reminder, dying])[0].status == "accepted"
    _run(settings, "sms", [f"{rid}:sms"])  # the email waits in its queue
    settle = client.register_script(store.script_source("settle"))
    dead_key = f"{dying['id']}:sms"
    keys = [store.delivery_redis_key(dead_key), store.EVENTS, store.DEADLINES, store.DEADLETTER]
    args: list[Any] = [store.PREFIX, dead_key, 0, 1000, "dead", "retries exhausted", "", 0, 60]
    assert settle(keys=keys, args=args) == 1

    writer.drain()
    _later(monkeypatch, KEEP + 1)
    assert writer.drain().compacted == 1  # the sent SMS alone

    assert client.hget(store.delivery_redis_key(doubtful), "state") == "in_doubt"
    assert client.hget(store.delivery_redis_key(dead_key), "state") == "dead"
    assert not client.exists(store.delivery_redis_key(f"{rid}:sms"))
    assert client.hget(store.reminder_key(rid), "c:sms").startswith("sent|1@outbox|")  # provider on attempts
    assert client.exists(store.body_key(rid))  # the email still needs it

    _run(settings, "email", [f"{rid}:email"])  # rendered from the body kept
    assert [d["outcome"] for d in read_status(client, rid)["deliveries"]] == ["sent", "sent"]
    writer.drain()
    _later(monkeypatch, 2 * KEEP + 2)
    assert writer.drain().compacted == 1
    assert not client.exists(store.body_key(rid))
    assert len(_sent_lines(settings, "email", rid)) == 1


def test_a_receipt_for_a_compacted_delivery_still_reaches_the_ledger(
    settings: Settings,
    client: redis.Redis,
    writer: LedgerWriter,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reminder = _reminder(["sms"])
    key = f"{reminder['id']}:sms"
    assert Unpublished(settings).enqueue(reminder).status == "accepted"
    _run(settings, "sms", [key])
    writer.drain()
    _later(monkeypatch, KEEP + 1)
    assert writer.drain().compacted == 1
    assert not client.exists(store.delivery_redis_key(key))

    receipts = Receipts(client, settings.events_maxlen)
    assert receipts.record(key, "undelivered", "30005")
    writer.drain()
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                delivery_events.c.receipt, delivery_events.c.receipt_code, delivery_events.c.account_id
            ).where(delivery_events.c.delivery_key == key, delivery_events.c.receipt != "")
        ).all()
    assert [tuple(r) for r in rows] == [("undelivered", "30005", reminder["account_id"])]

    suppressed = _reminder(["sms"])
    assert Unpublished(settings).enqueue(suppressed).status == "accepted"
    assert cancel(client, suppressed["id"]) == {f"{suppressed['id']}:sms": "cancelled"}
    writer.drain()
    _later(monkeypatch, 2 * KEEP + 2)
    assert writer.drain().compacted == 1
    assert not receipts.record(f"{suppressed['id']}:sms", "delivered")  # never sent: no receipt


def test_a_reminder_stored_before_bodies_had_their_own_key_is_sent_deduplicated_and_compacted_small(
    settings: Settings, client: redis.Redis, writer: LedgerWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    reminder = _reminder(["sms"])
    rid, key = reminder["id"], f"{reminder['id']}:sms"
    assert Unpublished(settings).enqueue(reminder).status == "accepted"
    # as an earlier version stored it: the body a field of the record, the digest in full
    record = store.reminder_key(rid)
    body = client.get(store.body_key(rid))
    client.delete(store.body_key(rid))
    client.hset(record, mapping={"body": body, "digest": hashlib.sha256(body.encode()).hexdigest()})
    assert client.object("encoding", record) == "hashtable"

    _run(settings, "sms", [key])
    assert read_status(client, rid)["deliveries"][0]["outcome"] == "sent"
    assert Unpublished(settings).enqueue(reminder).status == "duplicate"
    writer.drain()
    _later(monkeypatch, KEEP + 1)
    assert writer.drain().compacted == 1

    assert not client.hexists(record, "body")
    assert client.object("encoding", record) == "listpack"
    assert client.ttl(record) > 86400
    assert Unpublished(settings).enqueue(reminder).status == "duplicate"
