"""Holds and marks back into Redis from the ledger, after Redis lost them.

``herald suppress rebuild`` replays the ledger's copy of ``herald:holds:audit`` account by
account, in the order the changes happened:

- a hold added or replaced is held as its ``after`` record; a lift removes it. What is left and
  still in force (no ``until``, or ``until`` still ahead) is written back with its original id,
  reason, agreement, categories, who and times;
- each category's mark is the latest time a hold of that category began, whatever became of
  the hold since: a collection reminder decided before an agreement stays unsent after the
  agreement ended ("decided before the agreement"), as it would have without the loss.

Only then is the store's marker set, and sending resumes. Nothing already in Redis is
overwritten and no mark moves back in time, so a second run changes nothing.

Refused while the ledger has no hold changes at all, and while the audit stream in Redis
holds changes the ledger has not copied yet (``herald ledger --once`` first).
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

from herald import clock, suppression
from herald.ledger.schema import hold_events
from herald.ledger.urls import display_url
from herald.ledger.writer import unread
from herald.suppression import Hold, SuppressionStore

ACCOUNTS_PER_ROUND_TRIP = 500
"""Accounts restored per pipelined Redis round trip."""
ROWS_PER_FETCH = 5000


class RebuildRefused(RuntimeError):
    """The ledger cannot be trusted to rebuild from (empty, or behind the audit stream)."""


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
    unreadable: int = 0

    def lines(self) -> list[str]:
        """The counts, for people."""
        return [
            f"{self.changes} hold changes replayed for {self.accounts} accounts",
            f"holds: {self.holds_restored} restored, {self.holds_present} already in Redis, "
            f"{self.holds_lifted} lifted and {self.holds_lapsed} lapsed (not restored)",
            f"marks: {self.marks_restored} restored, {self.marks_kept} already in Redis",
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


def check_ready(client: redis.Redis, engine: Engine) -> int:
    """Refuse (``RebuildRefused``) unless the ledger has hold changes and all of the audit
    stream's; returns how many changes there are."""
    count = hold_changes_count(engine)
    if count == 0:
        raise RebuildRefused(
            f"the ledger at {display_url(str(engine.url))} has no hold changes: there is nothing to "
            "rebuild from (is HERALD_LEDGER_URL the ledger `herald ledger` writes?). If this "
            "deployment never had holds, `herald suppress init` marks the store populated"
        )
    if unread(client, engine, suppression.AUDIT):
        raise RebuildRefused(
            f"{suppression.AUDIT} has changes the ledger does not have yet: copy them first "
            "(`herald ledger --once`, or wait for the running `herald ledger`), then rebuild"
        )
    return count


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


def rebuild(
    client: redis.Redis,
    engine: Engine,
    *,
    by: str,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Restore every hold in force and every mark from the ledger, then set the marker.

    ``progress`` is called with the number of audit rows replayed since its last call."""
    report = RebuildReport(changes=check_ready(client, engine))
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
    SuppressionStore(client).initialize(f"{by} (herald suppress rebuild)")
    return report
