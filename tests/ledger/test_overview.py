"""The overview's figures: the last 24 hours by hour and today, from the ledger plus Redis's
uncopied tail, each outcome once, on SQLite and PostgreSQL.

Outcomes are seeded relative to a fixed "now" (passed in, as the page passes Redis's clock), in
Asia/Shanghai, some copied into the ledger by the real writer and some left in the stream.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import Engine

from herald.ledger.overview import CHARTED, HOURS, hour_starts, overview
from herald.ledger.schema import delivery_events
from tests.ledger.helpers import add_event, count, make_writer

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 15, 40, tzinfo=ZONE).timestamp()
"""15:40 in Shanghai: today began 15 h 40 m ago, the window at 16:00 yesterday."""
H = 3600.0


def seed(client: redis.Redis, plan: list[tuple[float, str, int]]) -> Counter[tuple[int, str]]:
    """Add ``n`` outcomes ``hours_ago`` hours before NOW for each ``(hours_ago, outcome, n)``;
    the counts the overview should find, by (hour index, charted outcome)."""
    starts = [s.timestamp() for s in hour_starts(NOW, ZONE)]
    expected: Counter[tuple[int, str]] = Counter()
    for hours_ago, outcome, n in plan:
        at = NOW - hours_ago * H
        for _ in range(n):
            add_event(client, "acct-1", outcome, at=at)
        if at >= starts[0]:
            index = max(i for i, s in enumerate(starts) if s <= at)
            expected[(index, "failed" if outcome == "dead" else outcome)] += n
    return expected


def by_hour(figures: object) -> Counter[tuple[int, str]]:
    hours = figures.hours  # type: ignore[attr-defined]
    return Counter({(i, o): n for i, h in enumerate(hours) for o, n in h.counts.items() if n})


def test_the_hours_are_the_zones_whole_hours_ending_with_the_current_one() -> None:
    starts = hour_starts(NOW, ZONE)
    assert len(starts) == HOURS
    assert starts[-1] == datetime(2026, 12, 7, 15, 0, tzinfo=ZONE)
    assert starts[0] == datetime(2026, 12, 6, 16, 0, tzinfo=ZONE)
    assert all(s.minute == 0 for s in starts)


def test_outcomes_in_the_ledger_and_in_the_stream_are_each_counted_once(
    client: redis.Redis, engine: Engine, ledger_url: str
) -> None:
    copied = seed(
        client,
        [(0.2, "sent", 5), (1.5, "suppressed", 2), (3, "dead", 1), (23.5, "sent", 4), (30, "sent", 7)],
    )
    make_writer(client, engine).drain()  # these are in the ledger now (and still in the stream)
    assert count(engine, delivery_events) == 19
    tail = seed(client, [(0.1, "sent", 3), (2, "in_doubt", 1), (5, "cancelled", 2), (16, "failed", 1)])
    add_event(client, "acct-1", "", at=NOW - 60, receipt="delivered", code="0")  # a receipt, not an outcome

    figures = overview(client, ledger_url, ZONE, now=NOW)

    assert by_hour(figures) == copied + tail
    assert figures.totals == {"sent": 12, "suppressed": 2, "cancelled": 2, "failed": 2, "in_doubt": 1}
    assert (figures.from_ledger, figures.from_redis) == (12, 7)  # 30 hours ago is outside
    # today began at 00:00, 15 h 40 m ago: the failure 16 hours ago and 23.5 h ago are yesterday
    assert figures.today == {"sent": 8, "suppressed": 2, "cancelled": 2, "failed": 1, "in_doubt": 1}
    assert figures.midnight == datetime(2026, 12, 7, 0, 0, tzinfo=ZONE)
    assert not figures.partial


def test_outcomes_copied_and_trimmed_from_the_stream_are_counted_from_the_ledger(
    client: redis.Redis, engine: Engine, ledger_url: str
) -> None:
    expected = seed(client, [(0.5, "sent", 6), (4, "failed", 2)])
    writer = make_writer(client, engine)
    writer.drain()
    client.delete("herald:events")  # as after trimming: only the ledger has them

    figures = overview(client, ledger_url, ZONE, now=NOW)

    assert by_hour(figures) == expected
    assert figures.from_redis == 0


def test_an_empty_ledger_and_stream_give_24_hours_of_zeros(
    client: redis.Redis, engine: Engine, ledger_url: str
) -> None:
    figures = overview(client, ledger_url, ZONE, now=NOW)
    assert [h.start.hour for h in figures.hours][-3:] == [13, 14, 15]
    assert all(h.counts == dict.fromkeys(CHARTED, 0) for h in figures.hours)
    assert figures.today == {}


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_outcomes_recorded_after_now_are_not_counted(
    client: redis.Redis, engine: Engine, ledger_url: str
) -> None:
    seed(client, [(-0.5, "sent", 3)])  # half an hour after NOW (a clock ahead of the page's)
    assert overview(client, ledger_url, ZONE, now=NOW).totals["sent"] == 0
