"""The ledger writer: copies ``herald:events`` and the two audit streams into SQL, in order.

The streams: ``herald:events`` (outcomes and receipts), ``herald:holds:audit`` (hold changes)
and ``herald:optout:audit`` (opt-out changes).

For each stream, one step reads up to ``HERALD_LEDGER_BATCH`` entries after the stream's
checkpoint, inserts them (``ON CONFLICT DO NOTHING``: an entry already there is skipped) and
moves the checkpoint, in one transaction. Only then is ``herald:events`` trimmed, up to that
checkpoint (``XTRIM MINID``). A crash anywhere leaves either nothing done or rows and
checkpoint together; entries read again are skipped. So the ledger is at-least-once and
idempotent, and the events stream never loses an entry the ledger does not have.

The audit streams are not trimmed here: each is bounded by its own ``MAXLEN``, and the holds'
one also serves ``herald suppress show``.

A stream that came back empty after Redis was lost restarts its ids from the current time.
Should that time be behind the checkpoint (the clock of a replacement server), the writer
sees the checkpoint's entry gone while older ones exist, and reads the stream from its start.

Compaction: once the ledger has committed a delivery's final outcome, the writer marks it in
``herald:copied``; ``HERALD_COMPACT_AFTER`` seconds later it folds the delivery's state into a
summary on its reminder's record (``lua/compact.lua``), so Redis holds live work and compact
idempotency, not history. A mark lost to a crash between the commit and the mark only leaves that
delivery whole until its retention, as before compaction existed.

Retention: rows older than ``HERALD_LEDGER_RETENTION_DAYS`` are deleted hourly, except the
latest change of each hold still in force and the latest change of each address whose opt-out
is in force (an opt-out never expires): ``herald suppress rebuild`` needs them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, delete, exists, not_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from herald import clock
from herald.holds import optouts, suppression
from herald.ledger.db import describe_error, insert_ignore, upsert
from herald.ledger.schema import checkpoints, delivery_events, hold_events, optout_events
from herald.periodic import run_every
from herald.state import store

log = logging.getLogger("herald.ledger")

STREAMS: dict[str, Table] = {
    store.EVENTS: delivery_events,
    suppression.AUDIT: hold_events,
    optouts.AUDIT: optout_events,
}
"""Each stream the ledger copies, and its table."""
TRIMMED = frozenset({store.EVENTS})
"""Streams trimmed up to the ledger's checkpoint once their entries are committed."""
PRUNE_EVERY = 3600.0
"""Seconds between two retention passes of a running writer."""
MAX_BACKOFF = 30.0
"""Longest wait between two attempts while Redis or the database is unreachable."""
COMPACT_BATCH = 1000
"""Deliveries one compaction call looks at."""
FOLDED = frozenset(
    {"sent", "suppressed", "cancelled", "duplicate", "expired", "opted_out", "capped", "failed", "invalid"}
)
"""Outcomes that are the last word on a delivery: compacted once copied (``in_doubt`` and
``dead`` wait for an operator, whole)."""
BACKLOG_WARNING = 0.9
"""Warn when the events stream holds this share of its MAXLEN."""

_DELIVERY_FIELDS = frozenset(
    {"key", "reminder_id", "account_id", "channel", "kind", "category", "outcome", "reason"}
    | {"receipt", "code", "at"}
)
_HOLD_FIELDS = frozenset({"action", "account_id", "by", "reason", "at", "before", "after"})
_OPTOUT_FIELDS = frozenset({"channel", "address", "action", "source", "by", "at"})


def split_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``<ms>-<seq>`` as two numbers."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest entry id after ``entry_id`` (``XTRIM MINID`` keeps it and what follows)."""
    ms, seq = split_id(entry_id)
    return f"{ms}-{seq + 1}"


def utc_naive(ts: float) -> datetime:
    """Epoch seconds as the ledger stores times: UTC, without a zone."""
    return datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None)


def _text(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL


def _at(text: str, ms: int) -> datetime:
    """The time an entry records (``at``), else the time Redis added it."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return utc_naive(ms / 1000)
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _extra(fields: dict[str, str], known: frozenset[str]) -> str | None:
    other = {k: v for k, v in fields.items() if k not in known}
    return orjson.dumps(other).decode() if other else None


def _header(stream: str, entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The columns every ledger row starts with: where the entry came from, and when."""
    ms, seq = split_id(entry_id)
    return {"stream": stream, "entry_id": entry_id, "ms": ms, "seq": seq, "at": _at(fields.get("at", ""), ms)}


def delivery_row(stream: str, entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The ``delivery_events`` row of one entry of the events stream."""
    get = fields.get
    return {
        **_header(stream, entry_id, fields),
        "account_id": get("account_id", ""),
        "delivery_key": get("key", ""),
        "reminder_id": get("reminder_id", ""),
        "channel": get("channel", ""),
        "kind": get("kind", ""),
        "category": get("category", ""),
        "outcome": get("outcome", ""),
        "reason": get("reason", ""),
        "receipt": get("receipt", ""),
        "receipt_code": get("code", ""),
        "extra": _extra(fields, _DELIVERY_FIELDS),
    }


def hold_row(stream: str, entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The ``hold_events`` row of one entry of the holds audit stream."""
    before, after = fields.get("before", ""), fields.get("after", "")
    record = store.json_object(after) or store.json_object(before)
    until = store.json_object(after).get("until")
    return {
        **_header(stream, entry_id, fields),
        "account_id": fields.get("account_id", ""),
        "action": fields.get("action", ""),
        "actor": fields.get("by", ""),
        "reason": fields.get("reason", ""),
        "hold_id": str(record.get("id") or ""),
        "until": float(until) if isinstance(until, int | float) else None,
        "before_json": before,
        "after_json": after,
        "extra": _extra(fields, _HOLD_FIELDS),
    }


def optout_row(stream: str, entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The ``optout_events`` row of one entry of the opt-out audit stream."""
    get = fields.get
    return {
        **_header(stream, entry_id, fields),
        "channel": get("channel", ""),
        "address": get("address", ""),
        "action": get("action", ""),
        "source": get("source", ""),
        "actor": get("by", ""),
        "extra": _extra(fields, _OPTOUT_FIELDS),
    }


RowMaker = Callable[[str, str, dict[str, str]], dict[str, Any]]
ROW_MAKERS: dict[Table, RowMaker] = {
    delivery_events: delivery_row,
    hold_events: hold_row,
    optout_events: optout_row,
}
"""How an entry becomes a row, by table."""


def read_checkpoints(engine: Engine) -> dict[str, str]:
    """The last entry id the ledger has, by stream."""
    with engine.connect() as conn:
        rows = conn.execute(select(checkpoints.c.stream, checkpoints.c.last_id)).all()
    return {stream: last for stream, last in rows}


def _restarted_below(client: redis.Redis, stream: str, checkpoint: str) -> bool:
    """Whether ``stream`` lost the checkpoint's entry while holding older ones: it came back
    empty after Redis was lost and restarted its ids below the checkpoint."""
    return bool(client.xrange(stream, min="-", max="(" + checkpoint, count=1)) and not client.xrange(
        stream, min=checkpoint, max=checkpoint, count=1
    )


def start_of_unread(client: redis.Redis, stream: str, checkpoint: str | None) -> str:
    """Where the entries the ledger does not have begin (an ``XRANGE`` start)."""
    if checkpoint is None:
        return "-"
    if _restarted_below(client, stream, checkpoint):
        log.warning(
            "%s restarted below the ledger's checkpoint %s (Redis lost it?): reading it from its start",
            stream,
            checkpoint,
        )
        return "-"
    return "(" + checkpoint


def unread(client: redis.Redis, engine: Engine, stream: str) -> bool:
    """Whether ``stream`` holds entries the ledger does not have yet."""
    start = start_of_unread(client, stream, read_checkpoints(engine).get(stream))
    return bool(client.xrange(stream, min=start, max="+", count=1))


@dataclass
class DrainReport:
    """What a drain did: entries copied per stream, and entries trimmed from Redis."""

    copied: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    trimmed: int = 0
    compacted: int = 0
    caught_up: bool = False

    @property
    def total(self) -> int:
        """Entries copied from every stream."""
        return sum(self.copied.values())


@dataclass(frozen=True)
class PruneReport:
    """Rows deleted by one retention pass."""

    deliveries: int
    holds: int
    optouts: int


def _optout_in_force() -> ColumnElement[bool]:
    """An ``optout_events`` row that is its address's latest change, and an ``add``: the
    opt-out it records is in force, and an opt-out never expires."""
    later = optout_events.alias("later_optout")
    superseded = exists().where(
        later.c.channel == optout_events.c.channel,
        later.c.address == optout_events.c.address,
        or_(
            later.c.ms > optout_events.c.ms,
            and_(later.c.ms == optout_events.c.ms, later.c.seq > optout_events.c.seq),
        ),
    )
    return and_(optout_events.c.action == "add", not_(superseded))


class LedgerWriter:
    """Copies the streams into the ledger; trims the events stream; applies retention.

    Parameters: ``client`` (Redis), ``engine`` (the ledger), ``batch`` (entries per
    transaction), ``retention_days``, ``events_maxlen`` (the events stream's limit, for the
    falling-behind warning), ``compact_after`` (seconds a copied finished delivery stays whole;
    None: never compacted). Hooks: ``save_checkpoint`` runs inside the transaction that inserts
    the rows; ``trim`` runs after that transaction committed.
    """

    def __init__(
        self,
        client: redis.Redis,
        engine: Engine,
        *,
        batch: int,
        retention_days: int,
        events_maxlen: int | None = None,
        compact_after: float | None = None,
    ) -> None:
        self.redis = client
        self.engine = engine
        self.batch = batch
        self.retention_days = retention_days
        self.events_maxlen = events_maxlen
        self.compact_after = compact_after
        self._compact = client.register_script(store.script_source("compact"))

    # -- copying ------------------------------------------------------------------------

    def step(self, stream: str, report: DrainReport | None = None) -> int:
        """Copy one batch of ``stream``; returns how many entries were read."""
        table = STREAMS[stream]
        checkpoint = read_checkpoints(self.engine).get(stream)
        start = start_of_unread(self.redis, stream, checkpoint)
        entries = self.redis.xrange(stream, min=start, max="+", count=self.batch)
        if not entries:
            if stream in TRIMMED and checkpoint is not None and start != "-":
                trimmed = self.trim(stream, checkpoint)  # left over by a crash before the trim
                if report is not None:
                    report.trimmed += trimmed
            return 0
        make = ROW_MAKERS[table]
        rows = [
            make(stream, _text(entry_id), {_text(k): _text(v) for k, v in (raw or {}).items()})
            for entry_id, raw in entries
        ]
        last = rows[-1]["entry_id"]
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(self.engine, table), rows)
            self.save_checkpoint(conn, stream, last)
        if report is not None:
            report.copied[stream] += len(rows)
        if table is delivery_events and self.compact_after is not None:
            self.mark_copied(rows)
        if stream in TRIMMED:
            trimmed = self.trim(stream, last)
            if report is not None:
                report.trimmed += trimmed
        return len(rows)

    def trim(self, stream: str, last_id: str) -> int:
        """Remove the entries up to ``last_id`` (committed to the ledger) from ``stream``."""
        return int(self.redis.xtrim(stream, minid=next_id(last_id), approximate=False))

    def mark_copied(self, rows: list[dict[str, Any]]) -> None:
        """Put the deliveries whose final outcome these rows hold on ``herald:copied``, scored
        by now on Redis's clock: compacted ``compact_after`` seconds later."""
        keys = {r["delivery_key"] for r in rows if r["outcome"] in FOLDED and r["delivery_key"]}
        if keys:
            now = store.redis_now(self.redis)
            self.redis.zadd(store.COPIED, dict.fromkeys(keys, now))

    def compact(self, stop: threading.Event | None = None) -> int:
        """Fold the copied deliveries that are due (``lua/compact.lua``); returns how many."""
        if self.compact_after is None:
            return 0
        total = 0
        while stop is None or not stop.is_set():
            args: list[str | float] = [store.PREFIX, clock.offset(), self.compact_after, COMPACT_BATCH]
            folded, _, more = self._compact(keys=[store.COPIED], args=args)
            total += int(folded)
            if not int(more):
                break
        return total

    def save_checkpoint(self, conn: Connection, stream: str, last_id: str) -> None:
        """Record that the ledger has ``stream`` up to ``last_id`` (inside the rows' transaction)."""
        values = {"stream": stream, "last_id": last_id, "updated_at": utc_naive(clock.time())}
        conn.execute(upsert(self.engine, checkpoints, "stream", values))

    def drain(
        self,
        stop: threading.Event | None = None,
        max_rounds: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> DrainReport:
        """Copy every stream until nothing is left, ``stop`` is set or ``max_rounds`` were done
        (a round is one batch of each stream). ``progress(n)`` is called after each batch
        copied, with its number of entries: a person waiting on ``herald ledger --once`` sees
        the copy advance (its total: :meth:`backlog`)."""
        report = DrainReport()
        self.check_backlog()
        rounds = 0
        while (stop is None or not stop.is_set()) and (max_rounds is None or rounds < max_rounds):
            rounds += 1
            copied = 0
            for stream in STREAMS:
                read = self.step(stream, report)
                copied += read
                if read and progress is not None:
                    progress(read)
            if copied == 0:
                report.caught_up = True
                break
        report.compacted = self.compact(stop)
        return report

    def backlog(self) -> int | None:
        """How many entries a drain would copy now, where that is cheap to know; else None.

        It is the total of ``herald ledger --once``'s progress bar. ``XLEN`` alone would not do:
        the audit streams keep what the ledger already has (only ``herald:events`` is trimmed
        up to the checkpoint). So each stream counts as a whole when the ledger has none of it
        (no checkpoint, or it restarted below it); else the side of its checkpoint that holds
        fewer than a batch is read and counted: the unread side of a stream a writer keeps up
        with, the copied side of the events stream (at most a batch a crash left untrimmed).
        None when both sides hold more (an audit stream far behind its checkpoint): counting
        it would mean reading it all.
        """
        marks = read_checkpoints(self.engine)
        total = 0
        for stream in STREAMS:
            unread_entries = self._unread_count(stream, marks.get(stream))
            if unread_entries is None:
                return None
            total += unread_entries
        return total

    def _unread_count(self, stream: str, checkpoint: str | None) -> int | None:
        """The entries of ``stream`` after ``checkpoint``, if counting them is cheap (see
        :meth:`backlog`)."""
        length = int(self.redis.xlen(stream))
        if checkpoint is None or _restarted_below(self.redis, stream, checkpoint):
            return length
        after = self.redis.xrange(stream, min="(" + checkpoint, max="+", count=self.batch) or []
        if len(after) < self.batch:
            return len(after)
        upto = self.redis.xrevrange(stream, max=checkpoint, min="-", count=self.batch) or []
        if len(upto) < self.batch:
            return length - len(upto)
        return None

    def check_backlog(self) -> None:
        """Warn when the events stream nears its ``MAXLEN``: past it, Redis drops the oldest
        entries, whether or not the ledger has them (the writer is falling behind)."""
        if self.events_maxlen is None:
            return
        length = int(self.redis.xlen(store.EVENTS))
        if length >= BACKLOG_WARNING * self.events_maxlen:
            log.warning(
                "%s holds %d entries, %.0f%% of HERALD_EVENTS_MAXLEN (%d): the ledger writer is falling "
                "behind; past the limit Redis drops entries the ledger does not have",
                store.EVENTS,
                length,
                100 * length / self.events_maxlen,
                self.events_maxlen,
            )

    # -- retention ----------------------------------------------------------------------

    def prune(self) -> PruneReport:
        """Delete rows older than the retention, except the latest change of each hold in force
        and the latest change of each address whose opt-out is in force."""
        now = clock.time()
        cutoff = utc_naive(now - self.retention_days * 86400)
        later = hold_events.alias("later")
        superseded = exists().where(
            later.c.account_id == hold_events.c.account_id,
            later.c.hold_id == hold_events.c.hold_id,
            or_(
                later.c.ms > hold_events.c.ms,
                and_(later.c.ms == hold_events.c.ms, later.c.seq > hold_events.c.seq),
            ),
        )
        in_force = and_(
            hold_events.c.after_json != "",
            or_(hold_events.c.until.is_(None), hold_events.c.until > now),
            not_(superseded),
        )
        with self.engine.begin() as conn:
            deliveries = conn.execute(delete(delivery_events).where(delivery_events.c.at < cutoff)).rowcount
            holds = conn.execute(
                delete(hold_events).where(hold_events.c.at < cutoff, not_(in_force))
            ).rowcount
            opted = conn.execute(
                delete(optout_events).where(optout_events.c.at < cutoff, not_(_optout_in_force()))
            ).rowcount
        return PruneReport(int(deliveries or 0), int(holds or 0), int(opted or 0))

    # -- the long-running process -------------------------------------------------------

    def run(self, stop: threading.Event, poll: float) -> None:
        """Drain, wait ``poll`` seconds when caught up, repeat, until ``stop``; prune hourly;
        wait out outages of Redis or the database (``herald.periodic``)."""
        next_prune = 0.0

        def step() -> bool:
            nonlocal next_prune
            if time.monotonic() >= next_prune:
                pruned = self.prune()
                if pruned.deliveries or pruned.holds or pruned.optouts:
                    log.info(
                        "retention: deleted %d delivery, %d hold and %d opt-out rows",
                        pruned.deliveries,
                        pruned.holds,
                        pruned.optouts,
                    )
                next_prune = time.monotonic() + PRUNE_EVERY
            report = self.drain(stop, max_rounds=100)
            if report.total or report.compacted:
                log.info(
                    "copied %d events, %d hold changes and %d opt-out changes; trimmed %d from %s; "
                    "compacted %d finished deliveries",
                    report.copied[store.EVENTS],
                    report.copied[suppression.AUDIT],
                    report.copied[optouts.AUDIT],
                    report.trimmed,
                    store.EVENTS,
                    report.compacted,
                )
            return not report.caught_up

        run_every(
            poll,
            step,
            stop,
            name="ledger writer",
            outages=(redis.RedisError, SQLAlchemyError),
            describe=describe_error,
            max_wait=MAX_BACKOFF,
        )
