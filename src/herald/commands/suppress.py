"""``herald suppress``: operators' holds on accounts (e.g. on a repayment agreement)."""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from herald import store
from herald.commands.common import connect, default_operator, err, fail, out
from herald.config import get_settings
from herald.suppression import (
    CATEGORIES,
    Hold,
    SuppressionStore,
    compactness_advice,
    hold_id,
    parse_until,
)

app = typer.Typer(help="Hold accounts from contact, lift holds, and see who did what.", no_args_is_help=True)
OPERATOR = default_operator()
CSV_COLUMNS = ("account_id", "reason", "until", "agreement", "categories", "by")
IMPORT_BATCH = 1000


def _categories(values: list[str] | None) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(values or ["collection"]))
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {', '.join(unknown)} (known: {', '.join(CATEGORIES)})")
    return chosen


def _hold(
    account: str,
    reason: str,
    until: str | None,
    agreement: str | None,
    categories: tuple[str, ...],
    by: str,
    *,
    stable_id: bool = False,
) -> Hold:
    if not account.strip():
        raise ValueError("account_id is required")
    if not reason.strip():
        raise ValueError("reason is required")
    ends = parse_until(until, get_settings().default_timezone)
    if agreement:
        ident = hold_id("agreement", agreement)
    elif stable_id:  # re-importing the same line must not add a second hold
        digest = hashlib.sha256(f"{account}|{reason}|{until}|{','.join(categories)}".encode()).hexdigest()
        ident = f"operator:{digest[:12]}"
    else:
        ident = hold_id("operator", None)
    return Hold(
        id=ident,
        account_id=account.strip(),
        source="agreement" if agreement else "operator",
        reason=reason.strip(),
        categories=categories,
        agreement=agreement or None,
        until=ends,
        by=by,
    )


@app.command("init")
def init(by: Annotated[str, typer.Option(help="Who (recorded).")] = OPERATOR) -> None:
    """Mark the suppression store as populated. Run once on a new Redis, after loading holds.

    Until the marker exists nothing is sent: a Redis that restarted empty must not look like
    one with no holds.
    """
    client = connect()
    holds = SuppressionStore(client)
    holds.initialize(by)
    out.print("suppression store marked as populated", highlight=False)
    advice = compactness_advice(client)
    if advice:
        err.print(f"[yellow]note:[/] {advice}", highlight=False)


@app.command("add")
def add(
    account: Annotated[str, typer.Argument(help="The account to hold.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded and shown in outcomes).")],
    until: Annotated[
        str | None, typer.Option(help="A date (end of that day) or a time with an offset.")
    ] = None,
    agreement: Annotated[str | None, typer.Option(help="The agreement this hold belongs to.")] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Blocked category (repeatable).")
    ] = None,
    by: Annotated[str, typer.Option(help="Who (recorded).")] = OPERATOR,
) -> None:
    """Hold ACCOUNT: no reminder of the categories (default collection) is sent while it lasts."""
    try:
        hold = _hold(account, reason, until, agreement, _categories(category), by)
    except ValueError as exc:
        raise fail(str(exc)) from None
    change = SuppressionStore(connect()).add(hold)
    out.print(f"{change.action}: {hold.describe()}", highlight=False)


@app.command("remove")
def remove(
    account: Annotated[str, typer.Argument(help="The held account.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the hold is lifted (recorded).")],
    agreement: Annotated[str | None, typer.Option(help="Lift only this agreement's hold.")] = None,
    hold: Annotated[str | None, typer.Option(help="Lift only this hold id.")] = None,
    by: Annotated[str, typer.Option(help="Who (recorded).")] = OPERATOR,
) -> None:
    """Lift ACCOUNT's holds (one agreement's, one hold, or all); other holds stay."""
    change = SuppressionStore(connect()).remove(account, by=by, reason=reason, agreement=agreement, hold=hold)
    if not change.lifted:
        raise fail(f"{account} has no matching hold", 1)
    for lifted in change.lifted:
        out.print(f"lifted: {lifted.describe()}", highlight=False)


@app.command("show")
def show(account: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """ACCOUNT's holds and its audit history."""
    holds = SuppressionStore(connect())
    table = Table(title=f"holds of {account}")
    for column in ("id", "categories", "reason", "until", "by", "since", "state"):
        table.add_column(column, overflow="fold")
    from herald import clock

    now = clock.time()
    for h in holds.holds(account):
        table.add_row(
            h.id,
            ",".join(h.categories),
            h.reason,
            store.iso(h.until) or "-",
            h.by,
            store.iso(h.created_at),
            "active" if h.active(now) else "lapsed",
        )
    out.print(table)
    history = Table(title="audit")
    for column in ("at", "action", "by", "reason"):
        history.add_column(column, overflow="fold")
    for entry in holds.audit(account, count=50):
        history.add_row(
            entry.get("at", ""), entry.get("action", ""), entry.get("by", ""), entry.get("reason", "")
        )
    out.print(history)


@app.command("list")
def list_(
    offset: Annotated[int, typer.Option(help="Skip this many accounts.")] = 0,
    count: Annotated[int, typer.Option(help="Accounts per page.")] = 50,
    prefix: Annotated[str, typer.Option(help="Only accounts starting with this.")] = "",
) -> None:
    """Held accounts, a page at a time, with their holds."""
    holds = SuppressionStore(connect())
    table = Table(title="held accounts")
    for column in ("account", "hold", "categories", "reason", "until"):
        table.add_column(column, overflow="fold")
    accounts = holds.accounts(offset=offset, count=count, prefix=prefix)
    for account, held in holds.holds_of(accounts).items():
        for h in held:
            table.add_row(account, h.id, ",".join(h.categories), h.reason, store.iso(h.until) or "-")
    out.print(table)
    if len(accounts) == count:
        out.print(f"more: herald suppress list --offset {offset + count} --count {count}", highlight=False)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help=f"CSV with a header: {', '.join(CSV_COLUMNS)}.")],
    by: Annotated[str, typer.Option(help="Who, where a line has no `by`.")] = OPERATOR,
) -> None:
    """Import holds from a CSV file. Bad lines are reported with their number; good ones are kept.

    Importing the same file again changes nothing. `categories` is separated by spaces or `;`.
    """
    try:
        text = file.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    missing = {"account_id", "reason"} - set(reader.fieldnames or [])
    if missing:
        raise fail(
            f"{file}: the header must name {', '.join(sorted(missing))} (columns: {', '.join(CSV_COLUMNS)})"
        )
    rows = list(reader)
    holds = SuppressionStore(connect())
    errors: list[tuple[int, str]] = []
    counts = {"added": 0, "replaced": 0, "unchanged": 0}
    batch: list[Hold] = []

    def flush() -> None:
        for change in holds.add_many(batch):
            counts[change.action] += 1
        batch.clear()

    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task("import", total=len(rows))
        for number, row in enumerate(rows, start=2):
            try:
                raw_categories = (row.get("categories") or "").replace(";", " ").split()
                batch.append(
                    _hold(
                        row.get("account_id") or "",
                        row.get("reason") or "",
                        row.get("until") or None,
                        row.get("agreement") or None,
                        _categories(raw_categories),
                        row.get("by") or by,
                        stable_id=True,
                    )
                )
            except ValueError as exc:
                errors.append((number, str(exc)))
            if len(batch) >= IMPORT_BATCH:
                flush()
            bar.advance(task)
        flush()
    out.print(
        ", ".join(f"{n} {k}" for k, n in counts.items()) + f", {len(errors)} bad lines", highlight=False
    )
    for number, message in errors[:1000]:
        out.print(f"line {number}: {message}", highlight=False)
    if len(errors) > 1000:
        out.print(f"... and {len(errors) - 1000} more bad lines", highlight=False)
    if errors:
        raise typer.Exit(1)


@app.command("export")
def export() -> None:
    """Every hold as CSV on standard output (the import format)."""
    holds = SuppressionStore(connect())
    writer = csv.writer(sys.stdout)
    writer.writerow(CSV_COLUMNS)
    offset = 0
    while accounts := holds.accounts(offset=offset, count=1000):
        for account, held in holds.holds_of(accounts).items():
            for h in held:
                writer.writerow(
                    [account, h.reason, store.iso(h.until), h.agreement or "", " ".join(h.categories), h.by]
                )
        offset += len(accounts)
