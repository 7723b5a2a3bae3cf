"""``herald suppress rebuild`` after Redis lost everything: holds and marks back from the ledger."""

from __future__ import annotations

import asyncio

import pytest
import redis
from sqlalchemy import Engine

from herald import clock
from herald.config import Settings
from herald.delivery import pipeline
from herald.delivery.runtime import Runtime
from herald.guards import GuardContext, Skip, SuppressionUnknown
from herald.guards.suppressed import SuppressedGuard
from herald.holds.agreements import apply_event
from herald.holds.suppression import Hold, SuppressionStore, holds_key
from herald.ledger.rebuild import RebuildRefused, rebuild
from herald.state import store
from tests.harness import HeldBackProducer, make_reminder
from tests.ledger.helpers import make_writer

ACCOUNTS = ["acct-a", "acct-b", "acct-c", "acct-d", "acct-e"]


def _snapshot(client: redis.Redis, accounts: list[str]) -> dict[str, dict[str, str]]:
    return {a: store.decode_hash(client.hgetall(holds_key(a))) for a in accounts}


def _history_of_holds(client: redis.Redis) -> None:
    holds = SuppressionStore(client)
    now = clock.time()
    # a: an agreement signed, then completed: no hold left, its mark stays
    apply_event(holds, "acct-a", "AGR-1", "signed")
    apply_event(holds, "acct-a", "AGR-1", "completed")
    # b: an operator hold on two categories until next month, with all it records
    holds.add(
        Hold(
            id="operator:b1",
            account_id="acct-b",
            source="operator",
            reason="complaint 77 under review",
            categories=("collection", "agreement"),
            until=now + 30 * 86400,
            by="li.na",
        )
    )
    # c: a hold that lapsed by itself
    holds.add(Hold(id="operator:c1", account_id="acct-c", source="operator", reason="brief", until=now - 60))
    # d: an agreement hold replaced by a newer version of itself
    apply_event(holds, "acct-d", "AGR-2", "signed")
    holds.add(
        Hold(
            id="agreement:AGR-2",
            account_id="acct-d",
            source="agreement",
            agreement="AGR-2",
            reason="agreement AGR-2 renegotiated",
            by="agreements",
        )
    )
    # e: two holds, the older one lifted
    holds.add(Hold(id="operator:e1", account_id="acct-e", source="operator", reason="dispute", by="ops"))
    apply_event(holds, "acct-e", "AGR-3", "signed")
    holds.remove("acct-e", by="ops", reason="dispute settled", hold="operator:e1")


def test_rebuild_after_flushall_restores_every_hold_in_force_and_every_mark(
    client: redis.Redis, engine: Engine
) -> None:
    _history_of_holds(client)
    before = _snapshot(client, ACCOUNTS)
    assert "^collection" in before["acct-a"]
    assert "agreement:AGR-1" not in before["acct-a"]
    make_writer(client, engine).drain()
    client.flushall()
    holds = SuppressionStore(client)
    assert not holds.initialized()

    report = rebuild(client, engine, by="ops")

    expected = {a: dict(fields) for a, fields in before.items()}
    del expected["acct-c"]["operator:c1"]  # lapsed: not restored (its mark is)
    assert _snapshot(client, ACCOUNTS) == expected  # same ids, JSON, times; same marks
    assert holds.initialized()
    assert holds.accounts() == ["acct-b", "acct-d", "acct-e"]
    assert (report.holds_restored, report.holds_lifted, report.holds_lapsed) == (3, 2, 1)
    assert (report.accounts, report.marks_restored, report.changes) == (5, 6, 9)

    again = rebuild(client, engine, by="ops")
    assert (again.holds_restored, again.holds_present, again.marks_restored, again.marks_kept) == (0, 3, 0, 6)
    assert _snapshot(client, ACCOUNTS) == expected


def test_rebuild_keeps_what_redis_already_has_and_never_moves_a_mark_back(
    client: redis.Redis, engine: Engine
) -> None:
    holds = SuppressionStore(client)
    apply_event(holds, "acct-a", "AGR-1", "signed")
    make_writer(client, engine).drain()
    client.flushall()
    newer = Hold(
        id="agreement:AGR-1", account_id="acct-a", source="agreement", agreement="AGR-1", reason="new"
    )
    holds.add(newer)  # written since the loss, and copied
    make_writer(client, engine).drain()
    current = _snapshot(client, ["acct-a"])

    rebuild(client, engine, by="ops")

    assert _snapshot(client, ["acct-a"]) == current


def test_rebuild_refuses_an_empty_ledger(client: redis.Redis, engine: Engine) -> None:
    with pytest.raises(RebuildRefused, match="no hold changes"):
        rebuild(client, engine, by="ops")
    assert not SuppressionStore(client).initialized()


def test_rebuild_refuses_a_ledger_behind_the_audit_stream(client: redis.Redis, engine: Engine) -> None:
    holds = SuppressionStore(client)
    apply_event(holds, "acct-a", "AGR-1", "signed")
    make_writer(client, engine).drain()
    client.delete(store.PREFIX + "suppression:ready")
    apply_event(holds, "acct-b", "AGR-2", "signed")  # not in the ledger yet

    with pytest.raises(RebuildRefused, match="herald ledger --once"):
        rebuild(client, engine, by="ops")
    assert not holds.initialized()

    make_writer(client, engine).drain()
    assert rebuild(client, engine, by="ops").holds_present == 2


async def _decide(
    settings: Settings, keys: list[str]
) -> tuple[dict[str, Skip] | None, dict[str, tuple[str, str]]]:
    """What the send-time guard (None: it failed closed) and then the atomic claim say about
    ``keys`` (SMS deliveries)."""
    rt = Runtime(settings)
    try:
        batch = await pipeline.load(rt, "sms", keys, pipeline.BatchReport())
        try:
            verdicts = await SuppressedGuard().check(batch, GuardContext(settings, rt.redis, clock.time()))
        except SuppressionUnknown:
            return None, await pipeline.claim(rt, batch)
        claims = await pipeline.claim(rt, batch)
    finally:
        await rt.close()
    return {k: v for k, v in verdicts.items() if isinstance(v, Skip)}, claims


def test_a_delivery_decided_before_a_since_lifted_hold_stays_superseded_after_rebuild(
    client: redis.Redis, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    holds = SuppressionStore(client)
    apply_event(holds, "acct-s", "AGR-9", "signed")
    apply_event(holds, "acct-s", "AGR-9", "completed")  # collection may resume, for new decisions
    holds.add(Hold(id="operator:h1", account_id="acct-h", source="operator", reason="bereavement", by="ops"))
    make_writer(client, engine).drain()
    client.flushall()  # Redis lost everything

    producer = HeldBackProducer(settings)
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "-3600")
    decided_before = make_reminder(account_id="acct-s", channels=["sms"])  # an hour ago: before AGR-9
    assert producer.enqueue(decided_before).status == "accepted"
    monkeypatch.delenv("HERALD_CLOCK_OFFSET")
    decided_now = make_reminder(account_id="acct-s", channels=["sms"])
    held = make_reminder(account_id="acct-h", channels=["sms"])
    assert [producer.enqueue(r).status for r in (decided_now, held)] == ["accepted", "accepted"]
    old, new, other = (f"{r['id']}:sms" for r in (decided_before, decided_now, held))

    verdicts, claims = asyncio.run(_decide(settings, [old, new, other]))
    assert verdicts is None  # before the rebuild the guard fails closed...
    assert {verdict for verdict, _ in claims.values()} == {"unknown_suppression"}  # ...and so does the claim

    rebuild(client, engine, by="ops")

    verdicts, claims = asyncio.run(_decide(settings, [old, new, other]))
    assert verdicts is not None
    assert verdicts[old].reason.startswith("superseded: ")
    assert "agreement:AGR-9" in verdicts[old].reason
    assert new not in verdicts
    assert verdicts[other].reason.startswith("held: hold operator:h1")
    assert claims[old] == ("suppressed", "agreement:AGR-9")
    assert claims[new][0] == "claimed"
    assert claims[other] == ("suppressed", "operator:h1")
    state = store.decode_hash(client.hgetall(store.delivery_redis_key(old)))
    assert (state["outcome"], state["reason"]) == (
        "suppressed",
        "superseded: decided before hold agreement:AGR-9 began",
    )
