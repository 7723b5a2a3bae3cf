"""The claim is the last moment, on Redis's clock: what changes between the guards and the
request — the send window closing, a push token opting out — and hosts whose clocks differ
cannot get a reminder through that the claim would refuse; account ids cannot name another
structure's key.

The pipeline runs in this process against a redis-server of the module's own, on the outbox
provider in a temporary folder. Hosts "whose clocks differ" are this process travelled with
time-machine: Redis's clock does not move with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis
import time_machine

from herald.config import Settings
from herald.delivery.pipeline import BatchReport, process_batch
from herald.delivery.runtime import Runtime
from herald.guards import Delivery, Guard, GuardContext, Verdict
from herald.holds import optouts, suppression
from herald.holds.suppression import Hold, SuppressionStore
from herald.state import store
from tests.harness import Unpublished, make_reminder, redis_of_its_own

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_of_its_own(tmp_path_factory.mktemp("last-moment")) as url:
        yield url


@pytest.fixture
def settings(redis_url: str, repo_root: Path, tmp_path: Path) -> Settings:
    """Collection contact 08:00-22:00, no caps or duplicate window; the outbox in tmp_path."""
    return Settings(
        redis_url=redis_url,
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path,
        send_window="08:00-22:00",
        caps="",
        duplicate_window=0,
    )


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def _stored(settings: Settings, reminder: dict[str, Any]) -> list[str]:
    result = Unpublished(settings).enqueue(reminder)
    assert result.status == "accepted", result.reason
    return result.deliveries


def _run(settings: Settings, channel: Any, keys: list[str], *extra: Guard) -> BatchReport:
    async def go() -> BatchReport:
        rt = Runtime(settings)
        rt.guards.extend(extra)
        try:
            return await process_batch(rt, channel, keys)
        finally:
            await rt.close()

    return asyncio.run(go())


def _outbox(settings: Settings, channel: str) -> list[dict[str, Any]]:
    path = settings.outbox_dir / f"{channel}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


class MoveTheClock(Guard):
    """Moves every script's clock forward once every other guard has passed the batch."""

    name = "test-move-clock"

    def __init__(self, monkeypatch: pytest.MonkeyPatch, offset: float) -> None:
        self.monkeypatch = monkeypatch
        self.offset = offset

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        self.monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(self.offset))
        return {}


def test_the_send_window_closing_between_the_guards_and_the_claim_stops_the_send(
    settings: Settings, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_now = _redis_now(client)
    local = datetime.fromtimestamp(redis_now, tz=SHANGHAI)
    closing = datetime.combine(local.date(), datetime.min.time(), tzinfo=SHANGHAI).replace(hour=22)
    if closing.timestamp() < redis_now:
        closing += timedelta(days=1)
    before = closing.timestamp() - 2 - redis_now  # the guards run at 21:59:58, Shanghai time
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(before))
    (key,) = _stored(settings, make_reminder(channels=["sms"], account_id="acct-window"))

    report = _run(settings, "sms", [key], MoveTheClock(monkeypatch, before + 4))  # 22:00:02 at the claim

    assert key in report.deferred
    opening = datetime.fromtimestamp(report.deferred[key], tz=SHANGHAI)
    assert (opening.date(), opening.hour, opening.minute) == ((closing + timedelta(days=1)).date(), 8, 0)
    assert client.hget(store.delivery_redis_key(key), "state") == "scheduled"
    assert "send window closed before the claim" in client.hget(store.delivery_redis_key(key), "reason")
    assert _outbox(settings, "sms") == []


def test_a_producer_whose_clock_runs_ahead_cannot_escape_superseded(
    settings: Settings, client: redis.Redis
) -> None:
    account = "acct-ahead-producer"
    with time_machine.travel(time.time() + 3600, tick=True):  # the producer's host is an hour ahead
        (key,) = _stored(settings, make_reminder(channels=["sms"], account_id=account))
    holds = SuppressionStore(client)
    holds.add(Hold(id="agreement:A1", account_id=account, source="agreement", reason="signed", by="t"))
    holds.remove(account, by="t", reason="completed")  # lifted: only "decided before" is left

    report = _run(settings, "sms", [key])

    assert report.outcomes == {key: "suppressed"}
    assert client.hget(store.delivery_redis_key(key), "reason").startswith("superseded")
    assert _outbox(settings, "sms") == []


def test_a_worker_whose_clock_runs_ahead_does_not_let_a_hold_lapse_early(
    settings: Settings, client: redis.Redis
) -> None:
    account = "acct-ahead-worker"
    (key,) = _stored(settings, make_reminder(channels=["sms"], account_id=account))
    until = _redis_now(client) + 1800  # held for half an hour more, by Redis's clock
    SuppressionStore(client).add(
        Hold(id="operator:h1", account_id=account, source="operator", reason="dispute", by="t", until=until)
    )

    with time_machine.travel(time.time() + 3600, tick=True):  # the worker's host is an hour ahead
        report = _run(settings.model_copy(update={"send_window": "00:00-24:00"}), "sms", [key])

    assert report.outcomes == {key: "suppressed"}
    assert _outbox(settings, "sms") == []


@pytest.mark.parametrize("account", ["index", "audit", "ready"])
def test_account_ids_that_match_store_names_are_accounts_like_any_other(
    settings: Settings, client: redis.Redis, account: str
) -> None:
    anytime = settings.model_copy(update={"send_window": "00:00-24:00"})
    holds = SuppressionStore(client)
    free = _stored(anytime, make_reminder(channels=["sms"], account_id=account))
    assert _run(anytime, "sms", free).outcomes == {free[0]: "sent"}

    holds.add(Hold(id="operator:x", account_id=account, source="operator", reason="complaint", by="t"))
    held = _stored(anytime, make_reminder(channels=["sms"], account_id=account))
    assert _run(anytime, "sms", held).outcomes == {held[0]: "suppressed"}
    assert client.type(suppression.INDEX) == "zset"
    assert client.type(suppression.AUDIT) == "stream"
    assert account in holds.accounts(count=10_000)
    holds.remove(account, by="t", reason="resolved")


class OptOutAfterTheGuards(Guard):
    """Opts one push token out once every other guard has passed the batch."""

    name = "test-opt-out"

    def __init__(self, client: redis.Redis, token: str) -> None:
        self.client = client
        self.token = token

    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        optouts.OptOuts(self.client).add("push", self.token, source="test", by="test")
        return {}


def test_a_push_token_opted_out_between_the_guards_and_the_claim_is_never_sent_to(
    settings: Settings, client: redis.Redis
) -> None:
    stays, leaves = "token-stays-0001", "token-leaves-0002"
    reminder = make_reminder(channels=["push"], account_id="acct-two-phones")
    reminder["to"]["push_tokens"] = [stays, leaves]
    anytime = settings.model_copy(update={"send_window": "00:00-24:00"})
    (key,) = _stored(anytime, reminder)

    report = _run(anytime, "push", [key], OptOutAfterTheGuards(client, leaves))

    assert report.outcomes == {key: "sent"}
    (line,) = [line for line in _outbox(settings, "push") if line["key"] == key]
    assert line["to"] == [stays]


def test_a_store_of_the_earlier_layout_sends_nothing_until_init_moves_it(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_of_its_own(tmp_path / "old", initialized=False) as url:
        old = redis.Redis.from_url(url, decode_responses=True)
        hold = Hold(
            id="operator:h1", account_id="acct-old", source="operator", reason="old", by="t", created_at=1.0
        )
        old.hset(
            suppression.LEGACY_HOLDS + "acct-old",
            mapping={hold.id: hold.to_json().decode(), "^collection": "1.000 operator:h1"},
        )
        old.zadd(suppression.INDEX, {"acct-old": 0})
        old.set(suppression.LEGACY_MARKER, orjson.dumps({"by": "2025 deploy", "at": 1.0}))
        settings = Settings(
            redis_url=url,
            templates_dir=repo_root / "templates",
            outbox_dir=tmp_path,
            caps="",
            duplicate_window=0,
        )
        anytime = settings.model_copy(update={"send_window": "00:00-24:00"})
        held = _stored(anytime, make_reminder(channels=["sms"], account_id="acct-old"))
        free = _stored(anytime, make_reminder(channels=["sms"], account_id="acct-new"))

        before = _run(anytime, "sms", [*held, *free])
        assert before.outcomes == {}  # fail closed: the store is not known to be complete
        assert set(before.deferred) == {*held, *free}

        assert suppression.migrate_layout(old) == 1
        assert old.get(suppression.MARKER) is not None
        assert old.get(suppression.LEGACY_MARKER) is None
        assert [h.id for h in SuppressionStore(old).holds("acct-old")] == ["operator:h1"]
        assert not old.exists(suppression.LEGACY_HOLDS + "acct-old")
        monkeypatch.setenv("HERALD_CLOCK_OFFSET", "60")  # they come due again
        after = _run(anytime, "sms", [*held, *free])
        assert after.outcomes == {held[0]: "suppressed", free[0]: "sent"}
