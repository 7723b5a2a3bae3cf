"""``herald suppress``: operators' holds on accounts (e.g. on a repayment agreement)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from herald.cli.common import connect, default_operator, err, fail, make_table, out
from herald.config import get_settings
from herald.display.timefmt import local_time, local_time_named
from herald.holds.holdcsv import (
    CSV_COLUMNS,
    CsvHeaderError,
    build_hold,
    export_row,
    import_holds,
    parse_categories,
    read_rows,
)
from herald.holds.suppression import Hold, SuppressionStore, compactness_advice, migrate_layout

app = typer.Typer(help="Hold accounts from contact, lift holds, and see who did what.", no_args_is_help=True)
OPERATOR = default_operator()


def _categories(values: list[str] | None) -> tuple[str, ...]:
    return parse_categories(values)


def _hold(
    account: str,
    reason: str,
    until: str | None,
    agreement: str | None,
    categories: tuple[str, ...],
    by: str,
) -> Hold:
    return build_hold(
        account, reason, until, agreement, categories, by, timezone=get_settings().default_timezone
    )


@app.command("init")
def init(
    by: Annotated[str, typer.Option(help="Who (recorded).")] = OPERATOR,
    force: Annotated[
        bool,
        typer.Option("--force", help="Mark without asking the ledger whether this Redis lost its holds."),
    ] = False,
) -> None:
    """Mark the suppression store as populated. Run once on a new Redis, after loading holds.

    Until the marker exists nothing is sent: a Redis that restarted empty must not look like
    one with no holds. Refused when the ledger (HERALD_LEDGER_URL) has hold or opt-out changes
    and Redis has no marker: that Redis lost them, and `herald suppress rebuild` restores them.
    Does nothing when the marker is already there, so it is safe to run on every start.
    """
    from herald.ledger.db import LedgerUnavailable, close_ledgers, describe_error, open_ledger
    from herald.ledger.initcheck import InitCheck, InitRefused, check_init

    client = connect()
    holds = SuppressionStore(client)
    if force:
        check = InitCheck("mark")
    else:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            check = check_init(client, open_ledger(get_settings().ledger_url))
        except InitRefused as exc:
            raise fail(f"not marked: {exc}", 1) from None
        except LedgerUnavailable as exc:
            raise fail(f"not marked: {exc} (it tells a new Redis from one that lost its holds)", 3) from None
        except SQLAlchemyError as exc:
            raise fail(f"not marked: ledger error: {describe_error(exc)}", 3) from None
        finally:
            close_ledgers()
    if check.action == "present":
        out.print(
            f"suppression store already marked as populated by {check.marked_by or '?'} at "
            f"{local_time_named(check.marked_at) or '?'}: nothing to do",
            highlight=False,
        )
    elif check.action == "migrate":
        moved = migrate_layout(client)
        out.print(
            f"suppression store moved to the current layout ({moved} accounts), mark kept", highlight=False
        )
    else:
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
    table = make_table(
        "id",
        "categories",
        "reason",
        "until",
        "by",
        "since",
        "state",
        title=f"holds of {account}",
        times=["until", "since"],
    )
    from herald import clock

    now = clock.time()
    for h in holds.holds(account):
        table.add_row(
            h.id,
            ",".join(h.categories),
            h.reason,
            local_time(h.until) or "-",
            h.by,
            local_time(h.created_at),
            "active" if h.active(now) else "lapsed",
        )
    out.print(table)
    history = make_table("at", "action", "by", "reason", title="audit", times=["at"])
    for entry in holds.audit(account, count=50):
        history.add_row(
            local_time(entry.get("at")), entry.get("action", ""), entry.get("by", ""), entry.get("reason", "")
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
    table = make_table(
        "account", "hold", "categories", "reason", "until", title="held accounts", times=["until"]
    )
    accounts = holds.accounts(offset=offset, count=count, prefix=prefix)
    for account, held in holds.holds_of(accounts).items():
        for h in held:
            table.add_row(account, h.id, ",".join(h.categories), h.reason, local_time(h.until) or "-")
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
    try:
        rows = read_rows(text)
    except CsvHeaderError as exc:
        raise fail(f"{file}: {exc}") from None
    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task("import", total=len(rows))
        report = import_holds(
            SuppressionStore(connect()),
            rows,
            by=by,
            timezone=get_settings().default_timezone,
            progress=lambda done, _total: bar.update(task, completed=done),
        )
    errors = [(e.line, e.message) for e in report.errors]
    out.print(report.summary(), highlight=False)
    for number, message in errors[:1000]:
        out.print(f"line {number}: {message}", highlight=False)
    if len(errors) > 1000:
        out.print(f"... and {len(errors) - 1000} more bad lines", highlight=False)
    if errors:
        raise typer.Exit(1)


@app.command("export")
def export() -> None:
    """Every hold as CSV on standard output (the import format; a cell a spreadsheet would run
    as a formula starts with ', which the import takes off)."""
    holds = SuppressionStore(connect())
    writer = csv.writer(sys.stdout)
    writer.writerow(CSV_COLUMNS)
    offset = 0
    while accounts := holds.accounts(offset=offset, count=1000):
        for account, held in holds.holds_of(accounts).items():
            for h in held:
                writer.writerow(export_row(account, h))
        offset += len(accounts)


@app.command("rebuild")
def rebuild(by: Annotated[str, typer.Option(help="Who (recorded on the marker).")] = OPERATOR) -> None:
    """After Redis lost its data: restore every hold in force, each account's marks and every
    opt-out in force from the ledger (HERALD_LEDGER_URL); then mark the store populated so
    sending resumes.

    Refused while the ledger is empty or has not copied all of herald:holds:audit and
    herald:optout:audit yet (run `herald ledger --once` first). Holds and opt-outs already in
    Redis are kept; running it twice is safe.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from herald.ledger import rebuild as ledger_rebuild
    from herald.ledger.db import LedgerUnavailable, close_ledgers, describe_error, open_ledger

    client = connect()
    try:
        engine = open_ledger(get_settings().ledger_url)
        total = ledger_rebuild.check_ready(client, engine)
        columns = (
            TextColumn("replaying hold and opt-out changes"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("rebuild", total=total)
            report = ledger_rebuild.rebuild(client, engine, by=by, progress=lambda n: bar.advance(task, n))
    except ledger_rebuild.RebuildRefused as exc:
        raise fail(f"not rebuilt: {exc}", 1) from None
    except LedgerUnavailable as exc:
        raise fail(f"not rebuilt: {exc}", 3) from None
    except SQLAlchemyError as exc:
        raise fail(f"not rebuilt (the marker is not set): ledger error: {describe_error(exc)}", 3) from None
    finally:
        close_ledgers()
    for line in report.lines():
        out.print(line, highlight=False)
    out.print("suppression store marked as populated: sending resumes", highlight=False)
