"""An account's history: the ledger and the not-yet-copied tail of the streams, each entry once."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import Engine

from herald.config import Settings
from herald.holds import suppression
from herald.holds.agreements import apply_event
from herald.holds.suppression import SuppressionStore
from herald.intake.cancellation import cancel
from herald.ledger.db import LedgerUnavailable
from herald.ledger.history import HistoryEntry, account_history, next_before
from herald.ledger.writer import read_checkpoints
from herald.ops.embedded import free_port
from tests.harness import HeldBackProducer, make_reminder, wait_until
from tests.ledger.helpers import add_event, forget_checkpoints, make_writer

ACCOUNT = "acct-history"


def _next_millisecond(client: redis.Redis) -> None:
    """Wait until Redis's clock moved on, so entries of two streams have distinct times."""

    def millisecond() -> int:
        seconds, micros = client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    start = millisecond()
    wait_until(lambda: millisecond() > start, 5, "Redis's clock to move on a millisecond")


def _cancelled(settings: Settings, client: redis.Redis, channels: list[str]) -> str:
    """A reminder accepted and withdrawn: its deliveries end cancelled (events from the Lua)."""
    reminder = make_reminder(account_id=ACCOUNT, channels=channels)
    assert HeldBackProducer(settings).enqueue(reminder).status == "accepted"
    cancel(client, reminder["id"])
    _next_millisecond(client)
    return str(reminder["id"])


def _walk(settings: Settings, client: redis.Redis, limit: int) -> list[HistoryEntry]:
    pages: list[HistoryEntry] = []
    before = None
    while True:
        page = account_history(settings, client, ACCOUNT, limit=limit, before=before)
        pages += page
        before = next_before(page, limit)
        if before is None:
            return pages


def test_history_reads_the_ledger_and_the_tail_each_entry_once(
    client: redis.Redis, engine: Engine, settings: Settings
) -> None:
    holds = SuppressionStore(client)
    first = _cancelled(settings, client, ["sms", "email", "push"])
    apply_event(holds, ACCOUNT, "AGR-7", "signed", by="agreements-service")
    _next_millisecond(client)
    add_event(client, "someone-else")
    make_writer(client, engine).drain()  # all of the above is in the ledger now...
    second = _cancelled(settings, client, ["sms"])
    apply_event(holds, ACCOUNT, "AGR-7", "completed", by="agreements-service")  # ...these are not yet

    entries = account_history(settings, client, ACCOUNT)

    assert [(e.type, e.outcome) for e in entries] == [
        ("hold", "lift"),
        ("delivery", "cancelled"),
        ("hold", "add"),
        ("delivery", "cancelled"),
        ("delivery", "cancelled"),
        ("delivery", "cancelled"),
    ]
    assert [e.reminder_id for e in entries if e.type == "delivery"] == [second, first, first, first]
    assert {e.hold_id for e in entries if e.type == "hold"} == {"agreement:AGR-7"}
    assert entries[0].by == "agreements-service"
    assert len({e.event_id for e in entries}) == len(entries)
    assert all(e.account_id == ACCOUNT for e in entries)

    make_writer(client, engine).drain()
    assert account_history(settings, client, ACCOUNT) == entries  # from the ledger: the same entries

    forget_checkpoints(engine)  # the audit stream is read whole again: in both places, shown once
    assert read_checkpoints(engine) == {}
    assert client.xlen(suppression.AUDIT) == 2
    assert account_history(settings, client, ACCOUNT) == entries


def test_pages_follow_each_other_without_gaps_or_repeats(
    client: redis.Redis, engine: Engine, settings: Settings
) -> None:
    for i in range(4):
        _cancelled(settings, client, ["sms", "email"])
        if i == 1:
            make_writer(client, engine).drain()  # pages cross from the tail into the ledger
    apply_event(SuppressionStore(client), ACCOUNT, "AGR-8", "signed")
    everything = account_history(settings, client, ACCOUNT, limit=1000)
    assert len(everything) == 9

    for limit in (1, 2, 4):
        assert _walk(settings, client, limit) == everything


def test_receipts_show_as_delivered_or_undelivered(
    client: redis.Redis, engine: Engine, settings: Settings
) -> None:
    add_event(client, ACCOUNT, "", receipt="undelivered", code="30006")
    make_writer(client, engine).drain()
    (entry,) = account_history(settings, client, ACCOUNT)
    assert (entry.outcome, entry.reason) == ("undelivered", "provider receipt (code 30006)")


def test_a_malformed_before_is_refused(client: redis.Redis, settings: Settings) -> None:
    with pytest.raises(ValueError, match="not an event id"):
        account_history(settings, client, ACCOUNT, before="yesterday")


def test_an_unreachable_ledger_is_an_error_not_an_empty_history(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, ledger_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(LedgerUnavailable, match="cannot open the ledger"):
        account_history(settings, redis.Redis.from_url(redis_url), ACCOUNT)


def test_the_largest_id_the_ledger_holds_is_a_cursor_and_one_past_it_is_not(
    client: redis.Redis, settings: Settings
) -> None:
    assert account_history(settings, client, ACCOUNT, before=f"e:{2**63 - 1}-{2**63 - 1}") is not None
    with pytest.raises(ValueError, match="beyond any stream id"):
        account_history(settings, client, ACCOUNT, before=f"e:{2**63}-0")
