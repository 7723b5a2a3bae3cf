"""``herald deadletter``: deliveries that ran out of retries, and messages herald could not read."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from herald.cli.common import connect, err, fail, make_table, out
from herald.config import get_settings
from herald.delivery.deadletter import DeadLetter, drop, length, list_dead, replay
from herald.display.timefmt import local_time
from herald.state.queues import make_celery

LISTED = 1000
"""Replayed delivery keys printed at most; past them a count: with thousands replayed, the
whole list is noise, and the first ones show what was done."""

app = typer.Typer(
    help="List dead deliveries and put them back to work; drop messages herald could not read.",
    no_args_is_help=True,
)


@app.command("list")
def list_(count: Annotated[int, typer.Option(help="How many, oldest first.")] = 100) -> None:
    """List dead deliveries (entry id, delivery key, attempts, last reason, time) and messages
    herald could not read (queue, task, why, and a masked sample of what arrived)."""
    letters = list_dead(connect(), count=count)
    table = make_table(
        "id",
        "delivery",
        "attempts",
        "reason",
        "at",
        title=f"dead letters ({len(letters)})",
        times=["at"],
        right=["attempts"],
    )
    for d in letters:
        table.add_row(d.entry_id, _what(d), d.attempts, Text(_why(d)), local_time(d.at) or "-")
    out.print(table)


def _what(letter: DeadLetter) -> Text:
    if not letter.is_message:
        return Text(letter.key)
    return Text(f"message on {letter.queue or '?'}" + (f" (task {letter.task})" if letter.task else ""))


def _why(letter: DeadLetter) -> str:
    return f"{letter.reason}; it was: {letter.message}" if letter.is_message else letter.reason


@app.command("replay")
def replay_(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Entry ids or delivery keys; none means all.")
    ] = None,
) -> None:
    """Make dead deliveries pending again and publish them; every send-time check runs again.

    A progress bar on stderr counts the dead-letter entries gone through (a stream of thousands
    takes a while); then the replayed keys, the first thousand of them listed.
    """
    settings = get_settings()
    client = connect()
    app_ = make_celery(settings)
    try:
        columns = (
            TextColumn("replaying dead letters"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        total = length(client)
        with Progress(*columns, console=err, disable=not total) as bar:
            task = bar.add_task("replay", total=total)
            replayed, unknown = replay(
                client, app_, settings, ids or [], progress=lambda n: bar.advance(task, n)
            )
    finally:
        app_.close()
    out.print(f"replayed {len(replayed)} deliveries", highlight=False)
    for key in replayed[:LISTED]:
        out.print(f"  {key}", highlight=False, markup=False)
    if len(replayed) > LISTED:
        out.print(f"  ... and {len(replayed) - LISTED} more", highlight=False)
    if unknown:
        raise fail(f"no dead delivery for: {', '.join(unknown)}", 1)


@app.command("drop")
def drop_(
    ids: Annotated[list[str] | None, typer.Argument(help="Entry ids (see `herald deadletter list`).")] = None,
    messages: Annotated[
        bool, typer.Option("--messages", help="Drop every message entry (not the dead deliveries).")
    ] = False,
) -> None:
    """Remove dead-letter entries once looked at: by entry id, or every message entry."""
    if not ids and not messages:
        raise fail("give entry ids, or --messages", 2)
    dropped, unknown = drop(connect(), ids or [], messages=messages)
    out.print(f"dropped {len(dropped)} entries", highlight=False)
    if unknown:
        raise fail(f"no dead-letter entry: {', '.join(unknown)}", 1)
