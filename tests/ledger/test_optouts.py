"""Opt-outs survive a Redis loss: ``herald ledger`` copies ``herald:optout:audit``, retention
keeps every opt-out in force, ``herald suppress rebuild`` puts them back before the marker, and
the claim honours them afterwards. SQLite and a real PostgreSQL, a real redis-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
import time_machine
from sqlalchemy import Engine, select

from herald import clock
from herald.config import Settings
from herald.holds import optouts
from herald.holds.optouts import OptOuts
from herald.holds.suppression import MARKER, Hold, SuppressionStore
from herald.ledger.initcheck import InitRefused, check_init
from herald.ledger.rebuild import RebuildRefused, rebuild
from herald.ledger.schema import hold_events, optout_events
from herald.models import CHANNELS
from herald.state import store
from tests.harness import HeldBackProducer, claim_only, make_reminder
from tests.ledger.helpers import count, entry_ids, forget_checkpoints, make_writer, stream_ids

OUT = "+8613800138001"
"""Replied STOP and never came back."""
BACK_IN = "+8613800138002"
"""Opted out, then replied START: not to be restored."""
OUT_AGAIN = "+8613800138003"
"""Out, in, and out again: restored."""
EMAIL = "Li.Wei@Example.cn"
GONE_TOKENS = ["device-token-gone-1", "device-token-gone-2"]


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member


def _members(client: redis.Redis) -> dict[str, set[str]]:
    return {c: {_text(m) for m in client.smembers(store.optout_key(c))} for c in CHANNELS}


def _history_of_optouts(client: redis.Redis, redis_url: str) -> None:
    """Every writer of the opt-out sets: the command line and API (``OptOuts``), the inbound
    STOP / START keywords, the unsubscribe link and the pipeline (``add_async``)."""
    book = OptOuts(client)
    book.add("sms", OUT, source="sms-keyword", by=OUT)
    book.add("sms", BACK_IN, source="sms-keyword", by=BACK_IN)  # replied STOP,
    book.remove("sms", BACK_IN, source="sms-keyword", by=BACK_IN)  # then START
    book.add("sms", OUT_AGAIN, source="sms-keyword", by=OUT_AGAIN)
    book.remove("sms", OUT_AGAIN, source="operator", by="ops-li")
    book.add("sms", OUT_AGAIN, source="sms-keyword", by=OUT_AGAIN)
    book.add("email", EMAIL, source="unsubscribe-link", by=EMAIL.lower())

    async def provider_says_gone() -> None:
        aio = aioredis.Redis.from_url(redis_url)
        try:
            await optouts.add_async(aio, "push", GONE_TOKENS, source="provider", by="herald")
        finally:
            await aio.aclose()

    asyncio.run(provider_says_gone())


IN_FORCE = {
    "sms": {OUT, OUT_AGAIN},
    "email": {EMAIL.lower()},
    "push": set(GONE_TOKENS),
}


def test_opt_out_changes_are_copied_in_order_once_each(
    client: redis.Redis, engine: Engine, redis_url: str
) -> None:
    _history_of_optouts(client, redis_url)
    client.xadd(
        optouts.AUDIT,
        {
            "channel": "sms",
            "address": OUT,
            "action": "add",
            "source": "operator",
            "by": "ops",
            "ticket": "T-9",
        },
    )
    audit = stream_ids(client, optouts.AUDIT)

    report = make_writer(client, engine).drain()

    assert report.copied[optouts.AUDIT] == len(audit) == 10
    assert entry_ids(engine, optout_events) == audit
    assert stream_ids(client, optouts.AUDIT) == audit  # the audit stream is left alone
    with engine.connect() as conn:
        rows = list(conn.execute(select(optout_events).order_by(optout_events.c.ms, optout_events.c.seq)))
    assert [(r.channel, r.address, r.action) for r in rows[:3]] == [
        ("sms", OUT, "add"),
        ("sms", BACK_IN, "add"),
        ("sms", BACK_IN, "remove"),
    ]
    assert (rows[0].source, rows[0].actor, rows[0].extra) == ("sms-keyword", OUT, '{"undo":"keyword"}')
    assert (rows[1].source, rows[1].actor) == ("sms-keyword", BACK_IN)
    assert (rows[4].action, rows[4].source, rows[4].actor) == ("remove", "operator", "ops-li")
    assert (rows[6].channel, rows[6].address, rows[6].source) == ("email", EMAIL.lower(), "unsubscribe-link")
    assert {(r.address, r.source, r.actor) for r in rows[7:9]} == {
        (t, "provider", "herald") for t in GONE_TOKENS
    }
    assert orjson.loads(rows[9].extra) == {"ticket": "T-9"}
    assert abs(rows[0].at.replace(tzinfo=UTC).timestamp() - clock.time()) < 3600

    forget_checkpoints(engine)  # as if the writer crashed before its checkpoint: all read again
    again = make_writer(client, engine, batch=3).drain()

    assert again.copied[optouts.AUDIT] == len(audit)
    assert entry_ids(engine, optout_events) == audit  # still one row each


def test_retention_keeps_every_opt_out_in_force_and_deletes_the_rest(
    client: redis.Redis, engine: Engine
) -> None:
    book = OptOuts(client)
    start = clock.time()
    book.add("sms", OUT, source="sms-keyword", by=OUT)  # in force for ever
    book.add("sms", BACK_IN, source="sms-keyword", by=BACK_IN)  # opted back in: all of it may go
    book.remove("sms", BACK_IN, source="sms-keyword", by=BACK_IN)
    book.add("email", EMAIL, source="unsubscribe-link", by="x")  # twice: the older one may go
    book.add("email", EMAIL, source="operator", by="ops")
    book.add("sms", OUT_AGAIN, source="sms-keyword", by=OUT_AGAIN)  # opted back in after the retention
    writer = make_writer(client, engine)
    writer.drain()
    assert writer.prune().optouts == 0  # nothing is old yet

    with time_machine.travel(datetime.fromtimestamp(start, UTC) + timedelta(days=1831), tick=False):
        book.remove("sms", OUT_AGAIN, source="sms-keyword", by=OUT_AGAIN)
        book.add("push", GONE_TOKENS[0], source="provider", by="herald")
        writer.drain()
        pruned = writer.prune()

    assert pruned.optouts == 4
    with engine.connect() as conn:
        kept = [(r.channel, r.address, r.action, r.source) for r in conn.execute(select(optout_events))]
    assert sorted(kept) == [
        ("email", EMAIL.lower(), "add", "operator"),  # the latest change of an opt-out in force
        ("push", GONE_TOKENS[0], "add", "provider"),  # recent
        ("sms", OUT, "add", "sms-keyword"),  # five years old, still in force
        ("sms", OUT_AGAIN, "remove", "sms-keyword"),  # recent
    ]

    client.flushall()  # what was kept is enough to rebuild from
    report = rebuild(client, engine, by="ops")
    assert _members(client) == {"sms": {OUT}, "email": {EMAIL.lower()}, "push": {GONE_TOKENS[0]}}
    assert (report.optouts_restored, report.optouts_withdrawn) == (3, 1)


def test_rebuild_after_flushall_restores_every_opt_out_in_force_before_the_marker(
    client: redis.Redis, engine: Engine, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    holds = SuppressionStore(client)
    holds.add(Hold(id="operator:h1", account_id="acct-h", source="operator", reason="dispute", by="ops"))
    _history_of_optouts(client, redis_url)
    assert _members(client) == IN_FORCE
    make_writer(client, engine).drain()
    client.flushall()  # Redis lost everything: holds, opt-outs, marker, audit streams
    assert not any(_members(client).values())

    at_marker: list[dict[str, set[str]]] = []
    mark = SuppressionStore.initialize

    def watched(self: SuppressionStore, by: str) -> Any:
        at_marker.append(_members(self.redis))  # what a worker would see once the marker is set
        return mark(self, by)

    monkeypatch.setattr(SuppressionStore, "initialize", watched)
    report = rebuild(client, engine, by="ops")

    assert at_marker == [IN_FORCE]  # restored before the marker, so never sent to in between
    assert _members(client) == IN_FORCE
    assert BACK_IN not in _members(client)["sms"]
    assert holds.initialized()
    assert [h.id for h in holds.holds("acct-h")] == ["operator:h1"]
    assert (report.changes, report.optout_changes, report.addresses) == (1, 9, 6)
    assert (report.optouts_restored, report.optouts_present, report.optouts_withdrawn) == (5, 0, 1)
    assert "opt-outs: 5 restored, 0 already in Redis, 1 opted back in (not restored)" in report.lines()

    client.sadd(store.optout_key("sms"), BACK_IN)  # in Redis, though the ledger says back in
    again = rebuild(client, engine, by="ops")
    assert (again.optouts_restored, again.optouts_present) == (0, 5)
    assert _members(client)["sms"] == {OUT, OUT_AGAIN, BACK_IN}  # a rebuild never removes one


def test_rebuild_refuses_while_the_opt_out_audit_is_ahead_of_the_ledger(
    client: redis.Redis, engine: Engine
) -> None:
    holds = SuppressionStore(client)
    holds.add(Hold(id="operator:h1", account_id="acct-h", source="operator", reason="dispute", by="ops"))
    make_writer(client, engine).drain()
    client.delete(MARKER)
    OptOuts(client).add("sms", OUT, source="sms-keyword", by=OUT)  # not in the ledger yet

    with pytest.raises(RebuildRefused, match=r"herald:optout:audit has changes .*herald ledger --once"):
        rebuild(client, engine, by="ops")
    assert not holds.initialized()

    make_writer(client, engine).drain()
    report = rebuild(client, engine, by="ops")
    assert (report.optout_changes, report.optouts_present) == (1, 1)
    assert holds.initialized()


def test_a_ledger_with_only_opt_out_changes_refuses_init_and_rebuilds(
    client: redis.Redis, engine: Engine
) -> None:
    assert check_init(client, engine).action == "mark"  # a new Redis, an empty ledger
    with pytest.raises(RebuildRefused, match="no hold changes and no opt-out changes"):
        rebuild(client, engine, by="ops")
    OptOuts(client).add("sms", OUT, source="sms-keyword", by=OUT)
    make_writer(client, engine).drain()
    assert count(engine, hold_events) == 0
    client.flushall()

    with pytest.raises(InitRefused, match="0 hold changes and 1 opt-out changes") as refused:
        check_init(client, engine)
    assert "herald suppress rebuild" in str(refused.value)
    assert not SuppressionStore(client).initialized()

    report = rebuild(client, engine, by="ops")

    assert (report.changes, report.optouts_restored) == (0, 1)
    assert _members(client)["sms"] == {OUT}
    assert check_init(client, engine).action == "present"


def test_after_rebuild_the_claim_ends_a_reminder_to_an_opted_out_phone_opted_out(
    client: redis.Redis, engine: Engine, settings: Settings, redis_url: str
) -> None:
    _history_of_optouts(client, redis_url)
    make_writer(client, engine).drain()
    client.flushall()
    producer = HeldBackProducer(settings)
    to: dict[str, Any] = {"locale": "zh-CN", "timezone": "Asia/Shanghai"}
    opted_out = make_reminder(account_id="acct-o", channels=["sms"], to={**to, "phone": OUT})
    back_in = make_reminder(account_id="acct-i", channels=["sms"], to={**to, "phone": BACK_IN})
    assert [producer.enqueue(r).status for r in (opted_out, back_in)] == ["accepted", "accepted"]
    out_key, in_key = f"{opted_out['id']}:sms", f"{back_in['id']}:sms"
    assert claim_only(settings, out_key) == "unknown_suppression"  # no marker: nothing is sent

    rebuild(client, engine, by="ops")

    assert claim_only(settings, out_key) == "opted_out"
    assert claim_only(settings, in_key) == "claimed"
    state = store.decode_hash(client.hgetall(store.delivery_redis_key(out_key)))
    assert (state["state"], state["outcome"]) == ("opted_out", "opted_out")


def test_a_keyword_undoes_only_an_opt_out_a_keyword_or_the_provider_made(client: redis.Redis) -> None:
    book = OptOuts(client)
    phones = {
        name: f"+861380013{i:04d}"
        for i, name in enumerate(("keyword", "provider", "operator", "link", "both"))
    }
    book.add("sms", phones["keyword"], source="sms-keyword", by=phones["keyword"])
    asyncio.run(_provider_add(client, phones["provider"]))
    book.add("sms", phones["operator"], source="operator", by="ops-li")
    book.add("sms", phones["link"], source="unsubscribe-link", by=phones["link"])
    book.add("sms", phones["both"], source="sms-keyword", by=phones["both"])
    book.add("sms", phones["both"], source="operator", by="ops-li")
    audit_before = client.xlen(optouts.AUDIT)

    answers = {n: book.change("sms", p, "remove", source="sms-keyword", by=p) for n, p in phones.items()}

    assert answers == {"keyword": 1, "provider": 1, "operator": -1, "link": -1, "both": -1}
    assert [n for n, p in phones.items() if book.contains("sms", p)] == ["operator", "link", "both"]
    assert client.xlen(optouts.AUDIT) == audit_before + 2  # a refusal changes nothing, audits nothing
    assert book.remove("sms", phones["both"], source="operator", by="ops-li")  # an operator may
    assert not book.contains("sms", phones["both"])
    book.add("sms", phones["both"], source="sms-keyword", by=phones["both"])  # a keyword's own again
    assert book.remove("sms", phones["both"], source="sms-keyword", by=phones["both"])


async def _provider_add(client: redis.Redis, phone: str) -> None:
    async_client = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(_url_of(client)))
    try:
        await optouts.add_async(async_client, "sms", [phone], source="provider", by="herald")
    finally:
        await async_client.aclose()


def _url_of(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_a_rebuild_restores_who_may_lift_each_opt_out(client: redis.Redis, engine: Engine) -> None:
    book = OptOuts(client)
    by_keyword, by_operator, by_both = "+8613800139001", "+8613800139002", "+8613800139003"
    book.add("sms", by_keyword, source="sms-keyword", by=by_keyword)
    book.add("sms", by_operator, source="operator", by="ops-li")
    book.add("sms", by_both, source="operator", by="ops-li")
    book.add("sms", by_both, source="sms-keyword", by=by_both)  # already out: still an operator's
    legacy = "+8613800139004"  # an entry from before the audit said who may lift it
    client.sadd(store.optout_key("sms"), legacy)
    client.xadd(
        optouts.AUDIT, {"channel": "sms", "address": legacy, "action": "add", "source": "sms-keyword"}
    )
    make_writer(client, engine).drain()
    client.flushall()
    client.sadd(store.optout_key("sms"), by_operator)  # one opt-out survived, as an operator's

    rebuild(client, engine, by="ops")

    answers = {
        phone: book.change("sms", phone, "remove", source="sms-keyword", by=phone)
        for phone in (by_keyword, by_operator, by_both, legacy)
    }
    assert answers == {by_keyword: 1, by_operator: -1, by_both: -1, legacy: -1}
