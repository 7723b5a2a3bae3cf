"""The Redis collector against a real redis-server: queue depths as kombu stores them, and more.

This module starts its own redis-server with no worker on it, so what is published stays put.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from herald import clock
from herald.config import Settings
from herald.holds.suppression import Hold, SuppressionStore
from herald.ops.embedded import free_port
from herald.ops.metrics import RedisCollector, redis_for_metrics
from herald.state import store
from herald.state.fanout import publish_to_lanes
from herald.state.queues import ALL_QUEUES, SMS_BULK, TASK_DELIVER, make_celery
from tests.harness import redis_of_its_own

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_of_its_own(tmp_path_factory.mktemp("metrics-redis"), initialized=False) as url:
        yield url


def scrape(collector: RedisCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def depth(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], queue: str) -> float:
    for (name, labels), value in values.items():
        if name == "herald_queue_depth" and ("queue", queue) in labels:
            return value
    raise AssertionError(f"no herald_queue_depth for {queue}")


def test_the_collector_reports_what_redis_holds(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    app = make_celery(Settings(redis_url=redis_url))
    with app.connection_for_write() as conn:
        for _ in range(2):
            app.send_task(TASK_DELIVER, args=["sms", ["r-1:sms"]], queue=SMS_BULK, connection=conn)
        # a message with a priority sits in one of kombu's priority sub-lists of the queue
        app.send_task(TASK_DELIVER, args=["sms", ["r-2:sms"]], queue=SMS_BULK, priority=9, connection=conn)
    now = clock.time()
    client.zadd(store.SCHEDULED, {"r-3:sms": now - 60, "r-4:sms": now + 3600, "r-5:email": now + 7200})
    client.zadd(store.IN_DOUBT, {"r-6:sms": now})
    client.zadd(store.LEASES, {"r-7:push": now + 30})
    for n in range(4):
        client.xadd(store.DEADLETTER, {"key": f"r-{8 + n}:sms"})

    values = scrape(RedisCollector(redis_for_metrics(redis_url)))

    assert sum(client.llen(k) for k in client.scan_iter(match=SMS_BULK + "*", _type="list")) == 3
    assert depth(values, SMS_BULK) == 3
    assert all(depth(values, q) == 0 for q in ALL_QUEUES if q != SMS_BULK)
    assert values[("herald_queue_depth", (("channel", "sms"), ("lane", "bulk"), ("queue", SMS_BULK)))] == 3
    assert values[("herald_scheduled_deliveries", ())] == 3
    assert values[("herald_scheduled_due", ())] == 1
    assert values[("herald_in_doubt_deliveries", ())] == 1
    assert values[("herald_leases", ())] == 1
    assert values[("herald_deadletter_entries", ())] == 4
    assert values[("herald_redis_up", ())] == 1


def test_the_collector_reports_the_oldest_message_the_hold_store_and_the_ledger_backlog(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    app = make_celery(Settings(redis_url=redis_url))
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "-600")  # published ten minutes ago
    publish_to_lanes(app, ["r-1:sms"], {"r-1:sms": "collection"}, 100)
    client.xadd(store.EVENTS, {"key": "r-1:sms"}, id=f"{int((clock.time() - 120) * 1000)}-0")
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "0")

    values = scrape(RedisCollector(redis_for_metrics(redis_url)))

    oldest = values[
        ("herald_queue_oldest_seconds", (("channel", "sms"), ("lane", "bulk"), ("queue", SMS_BULK)))
    ]
    assert 600 <= oldest < 660
    assert all(
        v == 0
        for (n, labels), v in values.items()
        if n == "herald_queue_oldest_seconds" and ("queue", SMS_BULK) not in labels
    )
    assert values[("herald_suppression_populated", ())] == 0
    assert values[("herald_ledger_backlog_entries", ())] == 1
    assert 720 <= values[("herald_ledger_lag_seconds", ())] < 780  # 600 + 120 before real now
    SuppressionStore(client).initialize("test")
    client.delete(store.EVENTS)
    values = scrape(RedisCollector(redis_for_metrics(redis_url)))
    assert values[("herald_suppression_populated", ())] == 1
    assert values[("herald_ledger_lag_seconds", ())] == 0


def test_the_collector_counts_holds_added_replaced_and_lifted_by_every_kind_of_write(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    holds = SuppressionStore(client)

    def hold(account: str, reason: str = "agreement") -> Hold:
        return Hold(
            id=f"agr-{account}", account_id=account, source="agreement", reason=reason, agreement=account
        )

    holds.add(hold("a-1"))
    holds.add(hold("a-1"))  # the same hold again: unchanged, not counted
    holds.add(hold("a-1", "agreement, amended"))
    holds.add_many([hold("a-2"), hold("a-3"), hold("a-1", "agreement, amended")])
    holds.remove("a-2", by="ops", reason="agreement ended")
    holds.remove("a-9", by="ops", reason="no such account")  # nothing to lift: not counted

    values = scrape(RedisCollector(redis_for_metrics(redis_url)))

    changes = {
        dict(labels)["change"]: v for (n, labels), v in values.items() if n == "herald_hold_changes_total"
    }
    assert changes == {"added": 3, "replaced": 1, "lifted": 1}


def test_an_unreachable_redis_is_reported_not_raised() -> None:
    collector = RedisCollector(redis_for_metrics(f"redis://127.0.0.1:{free_port()}/0"))
    values = scrape(collector)
    assert values == {("herald_redis_up", ()): 0.0}
