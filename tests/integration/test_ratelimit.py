"""The cluster-wide rate limiter: its arithmetic on an injected clock, its hold across processes
(upper bounds only, measured on Redis's clock), and deliveries waiting for a token."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from herald.delivery.ratelimit import BULK_SHARE, PREFIX, Grant, Limiter, Rate, cost_of, parse_rate
from herald.holds.agreements import apply_event
from herald.holds.suppression import SuppressionStore
from herald.rendering.segments import count_segments
from herald.state import store
from tests.harness import Herald, make_reminder, running_herald

pytestmark = pytest.mark.integration

SECOND = 1_000_000  # the script works in microseconds


def test_rates_are_read_with_their_units_and_burst() -> None:
    assert parse_rate("30/s") == Rate(30, 3)
    assert parse_rate("1000/m", burst=5) == Rate(1000 / 60, 5)
    assert parse_rate("5/10s") == Rate(0.5, 1)
    assert parse_rate(" 3600 / h ") == Rate(1, 1)
    assert parse_rate("off") is None
    assert parse_rate("") is None
    for bad in ("30", "30/d", "-1/s", "0/s", "fast"):
        with pytest.raises(ValueError, match="rate"):
            parse_rate(bad)


def test_a_delivery_costs_its_segments_or_devices() -> None:
    assert cost_of("sms", 3, 1) == 3
    assert cost_of("sms", None, 1) == 1
    assert cost_of("push", None, 4) == 4
    assert cost_of("email", None, 1) == 1


class Script:
    """The limiter's Lua script called with an injected clock."""

    def __init__(self, client: redis.Redis, keys: list[str], rates: list[Rate]) -> None:
        self.call = client.register_script(store.script_source("ratelimit"))
        self.keys = keys
        self.tail: list[int] = []
        for rate in rates:
            self.tail += [rate.interval_us, rate.tolerance_us]

    def __call__(self, now: int, cost: int = 1, max_wait: int = 10 * SECOND) -> tuple[int, int]:
        granted, wait = self.call(keys=self.keys, args=[cost, max_wait, now, *self.tail])
        return int(granted), int(wait)


@pytest.fixture
def client(system: Herald) -> redis.Redis:
    return system.redis()


def _keys(client: redis.Redis, *names: str) -> list[str]:
    keys = [f"{PREFIX}test:{name}:{id(client)}" for name in names]
    client.delete(*keys)
    return keys


def test_a_burst_goes_at_once_then_units_are_spaced_by_the_interval(client: redis.Redis) -> None:
    limit = Script(client, _keys(client, "burst"), [Rate(10, 3)])  # 10/s, 3 at once
    t = 1_000 * SECOND
    assert [limit(t) for _ in range(3)] == [(1, 0)] * 3
    assert limit(t) == (1, SECOND // 10)  # the 4th waits one interval
    assert limit(t) == (1, 2 * SECOND // 10)  # reserved: the 5th waits behind it
    assert limit(t + SECOND) == (1, 0)  # a second later the limit has room again


def test_an_sms_of_three_segments_takes_three_units(client: redis.Redis) -> None:
    limit = Script(client, _keys(client, "cost"), [Rate(10, 1)])
    t = 2_000 * SECOND
    assert limit(t, cost=3) == (1, 2 * SECOND // 10)
    assert limit(t, cost=1) == (1, 3 * SECOND // 10)


def test_a_wait_beyond_the_longest_acceptable_reserves_nothing(client: redis.Redis) -> None:
    limit = Script(client, _keys(client, "long"), [Rate(1, 1)])
    t = 3_000 * SECOND
    assert limit(t) == (1, 0)
    assert limit(t, max_wait=SECOND // 2) == (0, SECOND)  # come back in a second
    assert limit(t, max_wait=SECOND // 2) == (0, SECOND)  # the refusal reserved nothing
    assert limit(t + SECOND) == (1, 0)


def test_times_keep_microsecond_precision_at_todays_epoch(client: redis.Redis) -> None:
    keys = _keys(client, "precise")
    limit = Script(client, keys, [Rate(1000, 1)])
    t = 1_795_921_390_123_457  # sixteen digits: Lua would print 1.7959213901235e+15
    assert limit(t) == (1, 0)
    assert int(client.get(keys[0]) or 0) == t + 1000
    assert limit(t) == (1, 1000)


def test_the_stricter_of_the_provider_and_sender_limits_decides(client: redis.Redis) -> None:
    limit = Script(client, _keys(client, "provider", "sender"), [Rate(100, 10), Rate(1, 1)])
    t = 4_000 * SECOND
    assert limit(t) == (1, 0)
    assert limit(t) == (1, SECOND)  # the sender's 1/s, although the provider has room


GRANTS = """
import asyncio, sys
import redis, redis.asyncio as aioredis
from herald.state import store
from herald.config import Settings
from herald.delivery.ratelimit import Limiter

async def main(url: str, count: int, out: str) -> None:
    settings = Settings(redis_url=url, rate_sms="{rate}", rate_sms_burst={burst}, rate_max_wait=5)
    client = aioredis.Redis.from_url(url)
    limiter = Limiter(settings, client, client.register_script(store.script_source("ratelimit")))
    for _ in range(count):
        [grant] = await limiter.reserve("sms", [1])
        assert grant.granted
        seconds, micros = await client.time()  # the slot reserved: Redis's now plus the wait
        await client.rpush(out, seconds * 1_000_000 + micros + round(grant.wait * 1_000_000))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def test_the_limit_holds_across_processes_on_redis_time(system: Herald, client: redis.Redis) -> None:
    rate, burst, processes, each = 20, 2, 4, 15
    out = f"herald:test:grants:{id(client)}"
    client.delete(out, f"{PREFIX}sms:outbox")
    script = GRANTS.format(rate=f"{rate}/s", burst=burst)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, system.url, str(each), out], env=system.env)
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    times = sorted(int(t) for t in client.lrange(out, 0, -1))
    assert len(times) == processes * each
    # Upper bounds only: in any window of w seconds, at most rate * w + burst grants.
    for w in (0.5, 1.0):
        span = int(w * SECOND)
        most = max(sum(1 for t in times[i:] if t < start + span) for i, start in enumerate(times))
        assert most <= rate * w + burst


def test_a_bulk_backlog_leaves_the_priority_lanes_room_within_the_longest_wait(system: Herald) -> None:
    settings = system.settings().model_copy(
        update={
            "rate_sms": "1/s",
            "rate_sms_burst": 1,
            "rate_max_wait": 10.0,
            "sms_provider": f"lanes{id(system)}",
        }
    )

    async def run() -> tuple[list[Grant], Grant, Grant]:
        client = aioredis.Redis.from_url(system.url)
        try:
            limiter = Limiter(settings, client, client.register_script(store.script_source("ratelimit")))
            backlog = [(await limiter.reserve("sms", [1], bulk=True))[0] for _ in range(12)]
            urgent = (await limiter.reserve("sms", [1]))[0]
            late_bulk = (await limiter.reserve("sms", [1], bulk=True))[0]
            return backlog, urgent, late_bulk
        finally:
            await client.aclose()

    backlog, urgent, late_bulk = asyncio.run(run())

    granted = [g for g in backlog if g.granted]
    assert 4 <= len(granted) <= 7  # a 1/s limit: reservations up to half the 10 s ahead
    assert all(g.wait <= settings.rate_max_wait * BULK_SHARE for g in granted)
    assert not backlog[-1].granted  # the rest of the campaign goes to the scheduler
    assert urgent.granted  # an agreement reminder still finds room within the longest wait
    assert urgent.wait <= settings.rate_max_wait
    assert not late_bulk.granted


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    env = {"HERALD_RATE_SMS": "10/s", "HERALD_RATE_SMS_BURST": "1"}
    with running_herald(tmp_path_factory.mktemp("herald-limited"), repo_root, env) as system:
        yield system


def test_deliveries_through_two_worker_processes_stay_under_the_limit(limited: Herald) -> None:
    reminders = [make_reminder(channels=["sms"], account_id=f"acct-rate-{i}") for i in range(30)]
    limited.producer().enqueue_many(reminders)
    sent = [limited.wait_outcome(f"{r['id']}:sms", timeout=60) for r in reminders]
    assert {s["outcome"] for s in sent} == {"sent"}  # those that had to wait long came back later
    lines = [line for r in reminders for line in limited.outbox_lines("sms", r["id"])]
    sends = sorted(
        (datetime.fromisoformat(line["at"]).timestamp(), count_segments(line["content"]["text"]).segments)
        for line in lines
    )
    # The unit is a segment: 10 segments/s with a burst of 1, across both worker processes.
    # Upper bounds only, with one message of slack for the time between a token and its send.
    slack = max(units for _, units in sends)
    span = sends[-1][0] - sends[0][0]
    assert sum(units for _, units in sends[:-1]) <= 10 * span + 1 + slack
    most = max(sum(u for t, u in sends[i:] if t < start + 3.0) for i, (start, _) in enumerate(sends))
    assert most <= 10 * 3 + 1 + slack


def test_a_hold_added_while_a_delivery_waits_for_its_token_stops_it(limited: Herald) -> None:
    client = limited.redis()
    seconds, micros = client.time()
    key = f"{PREFIX}sms:outbox"
    client.set(key, (seconds + 3600) * SECOND + micros)  # a backlog holds the next hour's tokens
    try:
        reminder = make_reminder(channels=["sms"], account_id=f"acct-token-{micros}")
        limited.producer().enqueue(reminder)
        waiting = limited.wait_state(f"{reminder['id']}:sms", "scheduled")
        assert "rate limit" in waiting["reason"]
        apply_event(SuppressionStore(client), reminder["account_id"], f"AGR-T{micros}", "signed")
    finally:
        client.delete(key)
    limited.shift_clock(3700)
    try:
        outcome = limited.wait_outcome(f"{reminder['id']}:sms")
    finally:
        limited.shift_clock(0)
    assert outcome["outcome"] == "suppressed"
    assert limited.outbox_lines("sms", reminder["id"]) == []
