"""The last 24 hours by hour: deliveries sent, suppressed, cancelled, failed and gone in doubt.

Read by the operator page's overview. Like an account's history (:mod:`herald.ledger.history`),
the figures are the ledger plus the part of ``herald:events`` the ledger has not copied yet, each
outcome counted once: the ledger's checkpoint is read first, then the stream's entries after it,
then the ledger's rows up to it (an entry copied and trimmed meanwhile has an id above the
checkpoint read, so only the stream's read counts it).

Hours are the display zone's (``HERALD_DEFAULT_TIMEZONE``): the current hour and the 23 before
it, each counted by the time its outcome was recorded (an entry's ``at``, on Redis's clock).
"Today" is since midnight in that zone. Provider receipts (``delivered``/``undelivered``) are
not outcomes and are not counted. ``dead`` (retries exhausted) is counted as failed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine

from herald import clock
from herald.ledger.db import open_ledger
from herald.ledger.schema import delivery_events
from herald.ledger.writer import read_checkpoints, split_id, start_of_unread, utc_naive
from herald.state import store

HOURS = 24
CHARTED: tuple[str, ...] = ("sent", "suppressed", "cancelled", "failed", "in_doubt")
"""The outcomes the overview charts, in its order."""
FOLDED = {"dead": "failed"}
"""Outcomes counted as another: retries exhausted is a failure to the operator."""
TAIL_LIMIT = 500_000
"""At most this many stream entries are read for one overview; beyond it the figures are partial."""
_PAGE = 5000


@dataclass(frozen=True)
class Hour:
    """One hour of the overview: when it starts (in the display zone) and what happened in it."""

    start: datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Overview:
    """The last 24 hours by hour, oldest first, and today's counts (every outcome seen)."""

    hours: list[Hour]
    today: dict[str, int]
    since: datetime
    """The first hour's start."""
    midnight: datetime
    """Where "today" begins, in the display zone."""
    partial: bool = False
    """The stream's tail was longer than :data:`TAIL_LIMIT`: its oldest entries were not counted."""
    from_ledger: int = 0
    from_redis: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    """The 24 hours' counts, by charted outcome."""


def _outcome(raw: str) -> str:
    return FOLDED.get(raw, raw)


def hour_starts(now: float, zone: ZoneInfo) -> list[datetime]:
    """The starts of the current hour in ``zone`` and of the 23 before it, oldest first (aware)."""
    local = datetime.fromtimestamp(now, zone)
    current = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return [(current - timedelta(hours=HOURS - 1 - i)).astimezone(zone) for i in range(HOURS)]


def _epoch(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _tail(
    client: redis.Redis, checkpoint: str | None, bounds: list[float], now: float
) -> tuple[Counter[tuple[int, str]], bool]:
    """Counts by (hour index, outcome) of the events the ledger has not copied, and whether
    there were more than :data:`TAIL_LIMIT` (partial)."""
    start = start_of_unread(client, store.EVENTS, checkpoint)
    # Entry ids are Redis's own clock in ms, unshifted: anything recorded in the window has an
    # id above its start (less the test offset), give or take an hour for clocks that differ.
    oldest = f"{max(0, int((bounds[0] - clock.offset() - 3600) * 1000))}-0"
    if start == "-" or split_id(oldest) > split_id(start.lstrip("(")):
        start = oldest
    counts: Counter[tuple[int, str]] = Counter()
    seen = 0
    top = "+"
    while seen < TAIL_LIMIT:
        page = client.xrevrange(store.EVENTS, max=top, min=start, count=_PAGE)
        if not page:
            return counts, False
        seen += len(page)
        for _, raw in page:
            fields = store.decode_hash(raw or {})
            outcome = fields.get("outcome", "")
            at = _epoch(fields.get("at", ""))
            if not outcome or at is None or not bounds[0] <= at < now:
                continue
            counts[(bisect_right(bounds, at) - 1, _outcome(outcome))] += 1
        top = "(" + store.text(page[-1][0])
    return counts, True


def _ledger(
    engine: Engine, checkpoint: str | None, bounds: list[float], now: float
) -> Counter[tuple[int, str]]:
    """Counts by (hour index, outcome) of the ledger's rows up to ``checkpoint``, in the window."""
    if checkpoint is None:
        return Counter()
    ms, seq = split_id(checkpoint)
    t = delivery_events.c
    edges = [utc_naive(b) for b in bounds[1:]]
    hour = case(*((t.at < edge, i) for i, edge in enumerate(edges)), else_=len(edges))
    query = (
        select(hour.label("hour"), t.outcome, func.count().label("n"))
        .where(
            t.stream == store.EVENTS,
            t.at >= utc_naive(bounds[0]),
            t.at < utc_naive(now),
            t.outcome != "",
            or_(t.ms < ms, and_(t.ms == ms, t.seq <= seq)),
        )
        .group_by(hour, t.outcome)
    )
    counts: Counter[tuple[int, str]] = Counter()
    with engine.connect() as conn:
        for index, outcome, n in conn.execute(query):
            counts[(int(index), _outcome(str(outcome)))] += int(n)
    return counts


def overview(client: redis.Redis, ledger_url: str, zone: ZoneInfo, *, now: float | None = None) -> Overview:
    """The last 24 hours by hour and today's counts, from the ledger and Redis's uncopied tail.

    ``now`` defaults to Redis's clock (the clock outcomes are recorded on). Raises
    ``herald.ledger.db.LedgerUnavailable`` or SQLAlchemy's errors when the ledger cannot be read,
    ``redis.RedisError`` when Redis cannot."""
    engine = open_ledger(ledger_url)
    moment = store.redis_now(client) if now is None else now
    starts = hour_starts(moment, zone)
    bounds = [s.timestamp() for s in starts]
    checkpoint = read_checkpoints(engine).get(store.EVENTS)
    tail, partial = _tail(client, checkpoint, bounds, moment)
    stored = _ledger(engine, checkpoint, bounds, moment)
    both = tail + stored
    hours = [Hour(start, {o: both[(i, o)] for o in CHARTED}) for i, start in enumerate(starts)]
    midnight = datetime.fromtimestamp(moment, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    first_today = bisect_right(bounds, midnight.timestamp() - 0.001)
    today: Counter[str] = Counter()
    for (index, outcome), n in both.items():
        if index >= first_today and n:
            today[outcome] += n
    return Overview(
        hours=hours,
        today=dict(sorted(today.items(), key=lambda item: (-item[1], item[0]))),
        since=starts[0],
        midnight=midnight,
        partial=partial,
        from_ledger=sum(stored.values()),
        from_redis=sum(tail.values()),
        totals={o: sum(h.counts[o] for h in hours) for o in CHARTED},
    )
