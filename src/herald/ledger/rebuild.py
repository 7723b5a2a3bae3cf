"""Holds, marks and opt-outs back into Redis from the ledger, after Redis lost them.

``herald suppress rebuild`` replays the ledger's copy of ``herald:holds:audit`` account by
account, in the order the changes happened:

- a hold added or replaced is held as its ``after`` record; a lift removes it. What is left and
  still in force (no ``until``, or ``until`` still ahead) is written back with its original id,
  reason, agreement, categories, who and times;
- each category's mark is the latest time a hold of that category began, whatever became of
  the hold since: a collection reminder decided before an agreement stays unsent after the
  agreement ended ("decided before the agreement"), as it would have without the loss.

Then it replays the ledger's copy of ``herald:optout:audit`` address by address, in order: the
last change of each (channel, address) wins, and an address whose last change opted it out is
added back to the channel's opt-out set. An opt-out never expires; an address that opted back
in is not restored.

Only then is the store's marker set, and sending resumes. Nothing already in Redis is
overwritten or removed and no mark moves back in time, so a second run changes nothing.

Refused while the ledger has neither hold changes nor opt-out changes, and while either audit
stream in Redis holds changes the ledger has not copied yet (``herald ledger --once`` first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import groupby
from typing import Any

import orjson
import redis
from sqlalchemy import Engine, Row, func, select

from herald import clock
from herald.holds import optouts, suppression
from herald.holds.suppression import Hold, SuppressionStore
from herald.ledger.schema import hold_events, optout_events
from herald.ledger.writer import unread
from herald.models import CHANNELS
from herald.state import store
from herald.values.ledger_urls import display_url

ACCOUNTS_PER_ROUND_TRIP = 500
"""Accounts restored per pipelined Redis round trip."""
ADDRESSES_PER_ROUND_TRIP = 1000
"""Opt-outs restored per pipelined Redis round trip."""
ROWS_PER_FETCH = 5000
OPTOUT_ACTIONS = frozenset({"add", "remove"})


class RebuildRefused(RuntimeError):
    """The ledger cannot be trusted to rebuild from (empty, or behind an audit stream)."""


@dataclass
class RebuildReport:
    """What a rebuild found in the ledger and did to Redis."""

    changes: int = 0
    accounts: int = 0
    holds_restored: int = 0
    holds_present: int = 0
    holds_lapsed: int = 0
    holds_lifted: int = 0
    marks_restored: int = 0
    marks_kept: int = 0
    optout_changes: int = 0
    addresses: int = 0
    optouts_restored: int = 0
    optouts_present: int = 0
    optouts_withdrawn: int = 0
    unreadable: int = 0

    def lines(self) -> list[str]:
        """The counts, for people."""
        return [
            f"{self.changes} hold changes replayed for {self.accounts} accounts",
            f"holds: {self.holds_restored} restored, {self.holds_present} already in Redis, "
            f"{self.holds_lifted} lifted and {self.holds_lapsed} lapsed (not restored)",
            f"marks: {self.marks_restored} restored, {self.marks_kept} already in Redis",
            f"{self.optout_changes} opt-out changes replayed for {self.addresses} addresses",
            f"opt-outs: {self.optouts_restored} restored, {self.optouts_present} already in Redis, "
            f"{self.optouts_withdrawn} opted back in (not restored)",
            *([f"{self.unreadable} unreadable audit entries skipped"] if self.unreadable else []),
        ]


@dataclass
class AccountState:
    """One account at the end of its audit trail."""

    account_id: str
    holds: dict[str, Hold]
    marks: dict[str, tuple[float, str]]
    lifted: int
    unreadable: int
    rows: int


@cache
def _restore_source() -> str:
    return (resources.files("herald.ledger") / "restore.lua").read_text("utf-8")


def hold_changes_count(engine: Engine) -> int:
    """How many hold changes the ledger has."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(hold_events)).scalar_one())


def optout_changes_count(engine: Engine) -> int:
    """How many opt-out changes the ledger has."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(optout_events)).scalar_one())


def _check(client: redis.Redis, engine: Engine) -> tuple[int, int]:
    """The ledger's hold changes and opt-out changes, once it is fit to rebuild from."""
    holds, opted = hold_changes_count(engine), optout_changes_count(engine)
    if holds == 0 and opted == 0:
        raise RebuildRefused(
            f"the ledger at {display_url(str(engine.url))} has no hold changes and no opt-out "
            "changes: there is nothing to rebuild from (is HERALD_LEDGER_URL the ledger `herald "
            "ledger` writes?). If this deployment never had holds or opt-outs, `herald suppress "
            "init` marks the store populated"
        )
    for stream in (suppression.AUDIT, optouts.AUDIT):
        if unread(client, engine, stream):
            raise RebuildRefused(
                f"{stream} has changes the ledger does not have yet: copy them first "
                "(`herald ledger --once`, or wait for the running `herald ledger`), then rebuild"
            )
    return holds, opted


def check_ready(client: redis.Redis, engine: Engine) -> int:
    """Refuse (``RebuildRefused``) unless the ledger has hold or opt-out changes and all of
    both audit streams'; returns how many changes there are to replay (both kinds)."""
    return sum(_check(client, engine))


def replay(account_id: str, changes: Iterable[Any]) -> AccountState:
    """An account's holds and marks after ``changes`` (its audit rows, oldest first)."""
    holds: dict[str, Hold] = {}
    marks: dict[str, tuple[float, str]] = {}
    seen: set[str] = set()
    unreadable = rows = 0
    for change in changes:
        rows += 1
        if change.after_json:
            try:
                record = orjson.loads(change.after_json)
                ident = str(record["id"])
                hold = Hold.from_json(change.after_json, id=ident, account_id=account_id)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                unreadable += 1
                continue
            holds[ident] = hold
            seen.add(ident)
            for category in hold.categories:
                if category not in marks or hold.created_at >= marks[category][0]:  # ties: the later
                    marks[category] = (hold.created_at, ident)
        elif change.action == "lift" and change.hold_id:
            holds.pop(change.hold_id, None)
            seen.add(change.hold_id)
        else:
            unreadable += 1
    return AccountState(account_id, holds, marks, len(seen - holds.keys()), unreadable, rows)


def _accounts(engine: Engine) -> Iterator[AccountState]:
    columns = (
        hold_events.c.account_id,
        hold_events.c.action,
        hold_events.c.hold_id,
        hold_events.c.after_json,
    )
    query = select(*columns).order_by(hold_events.c.account_id, hold_events.c.ms, hold_events.c.seq)
    with engine.connect() as conn:
        rows: Iterable[Row[Any]] = conn.execution_options(yield_per=ROWS_PER_FETCH).execute(query)
        for account, changes in groupby(rows, key=lambda r: r.account_id):
            yield replay(account, changes)


@dataclass
class AddressState:
    """One (channel, address) at the end of its opt-out changes."""

    channel: str
    address: str
    opted_out: bool | None
    """True: its last change opted it out; False: back in; None: no readable change."""
    unreadable: int
    rows: int
    keyword_undoes: bool = False
    """Its last change says a keyword may lift the opt-out (``undo`` = ``keyword``; an entry
    without it, from before sources were kept, needs an operator)."""


def last_change(channel: str, address: str, changes: Iterable[Any]) -> AddressState:
    """Where ``address`` stands on ``channel`` after ``changes`` (its rows, oldest first): the
    last readable change wins."""
    opted_out: bool | None = None
    keyword = False
    unreadable = rows = 0
    for change in changes:
        rows += 1
        if change.action not in OPTOUT_ACTIONS or channel not in CHANNELS or not address:
            unreadable += 1
            continue
        opted_out = change.action == "add"
        keyword = opted_out and store.json_object(change.extra or "").get("undo") == "keyword"
    return AddressState(channel, address, opted_out, unreadable, rows, keyword)


def _addresses(engine: Engine) -> Iterator[AddressState]:
    columns = (
        optout_events.c.channel,
        optout_events.c.address,
        optout_events.c.action,
        optout_events.c.extra,
    )
    query = select(*columns).order_by(
        optout_events.c.channel, optout_events.c.address, optout_events.c.ms, optout_events.c.seq
    )
    with engine.connect() as conn:
        rows: Iterable[Row[Any]] = conn.execution_options(yield_per=ROWS_PER_FETCH).execute(query)
        for (channel, address), changes in groupby(rows, key=lambda r: (r.channel, r.address)):
            yield last_change(channel, address, changes)


def _keyword_undoable_missing(client: redis.Redis, batch: list[AddressState]) -> list[AddressState]:
    """The opt-outs of ``batch`` a keyword may lift that Redis lacks (one Redis already has
    keeps whoever may lift it there)."""
    wanted = [s for s in batch if s.opted_out and s.keyword_undoes]
    if not wanted:
        return []
    with client.pipeline(transaction=False) as pipe:
        for state in wanted:
            pipe.sismember(store.optout_key(state.channel), state.address)
        present = pipe.execute()
    return [state for state, there in zip(wanted, present, strict=True) if not there]


def restore_optouts(
    client: redis.Redis,
    engine: Engine,
    report: RebuildReport,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Add every address whose last change opted it out back to its channel's opt-out set
    (pipelined); never removes a member Redis already has. Counts go to ``report``."""
    batch: list[AddressState] = []

    def flush() -> None:
        by_channel: dict[str, list[str]] = {}
        for state in batch:
            if state.opted_out:
                by_channel.setdefault(state.channel, []).append(state.address)
        if by_channel:
            undoable = _keyword_undoable_missing(client, batch)
            with client.pipeline(transaction=False) as pipe:
                for channel, addresses in by_channel.items():
                    pipe.sadd(store.optout_key(channel), *addresses)
                for state in undoable:  # a keyword may lift these, as before Redis was lost
                    pipe.hset(store.optout_undo_key(state.channel), state.address, "restored")
                added = pipe.execute()[: len(by_channel)]
            restored = sum(int(n) for n in added)
            report.optouts_restored += restored
            report.optouts_present += sum(len(a) for a in by_channel.values()) - restored
        report.addresses += len(batch)
        report.optouts_withdrawn += sum(1 for state in batch if state.opted_out is False)
        report.unreadable += sum(state.unreadable for state in batch)
        if progress is not None:
            progress(sum(state.rows for state in batch))
        batch.clear()

    for state in _addresses(engine):
        batch.append(state)
        if len(batch) >= ADDRESSES_PER_ROUND_TRIP:
            flush()
    if batch:
        flush()


def rebuild(
    client: redis.Redis,
    engine: Engine,
    *,
    by: str,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Restore every hold in force, every mark and every opt-out in force from the ledger,
    then set the marker.

    ``progress`` is called with the number of audit rows replayed since its last call."""
    hold_changes, optout_changes = _check(client, engine)
    report = RebuildReport(changes=hold_changes, optout_changes=optout_changes)
    script = client.register_script(_restore_source())
    now = clock.time()
    batch: list[AccountState] = []

    def flush() -> None:
        with client.pipeline(transaction=False) as pipe:
            for state in batch:
                args: list[str | int] = [state.account_id]
                live = [h for h in state.holds.values() if h.active(now)]
                args.append(len(live))
                for hold in live:
                    args += [hold.id, hold.to_json().decode()]
                for category, (began, ident) in sorted(state.marks.items()):
                    args += [category, f"{began:.3f}", ident]
                script(
                    keys=[suppression.holds_key(state.account_id), suppression.INDEX], args=args, client=pipe
                )
            answers = pipe.execute()
        for state, (restored, present, marks, kept) in zip(batch, answers, strict=True):
            report.accounts += 1
            report.holds_restored += int(restored)
            report.holds_present += int(present)
            report.holds_lapsed += sum(1 for h in state.holds.values() if not h.active(now))
            report.holds_lifted += state.lifted
            report.marks_restored += int(marks)
            report.marks_kept += int(kept)
            report.unreadable += state.unreadable
        if progress is not None:
            progress(sum(s.rows for s in batch))
        batch.clear()

    for state in _accounts(engine):
        batch.append(state)
        if len(batch) >= ACCOUNTS_PER_ROUND_TRIP:
            flush()
    if batch:
        flush()
    restore_optouts(client, engine, report, progress)  # before the marker: nothing is sent till then
    SuppressionStore(client).initialize(f"{by} (herald suppress rebuild)")
    return report
