"""``herald deadletter``: deliveries that ran out of retries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from herald.commands.common import connect, fail, out
from herald.config import get_settings
from herald.deadletter import list_dead, replay
from herald.queues import make_celery

app = typer.Typer(help="List dead deliveries and put them back to work.", no_args_is_help=True)


@app.command("list")
def list_(count: Annotated[int, typer.Option(help="How many, oldest first.")] = 100) -> None:
    """List dead deliveries: entry id, delivery key, attempts, last reason, time."""
    letters = list_dead(connect(), count=count)
    table = Table(title=f"dead letters ({len(letters)})")
    for column in ("id", "delivery", "attempts", "reason", "at"):
        table.add_column(column, overflow="fold")
    for d in letters:
        table.add_row(d.entry_id, d.key, d.attempts, d.reason, d.at)
    out.print(table)


@app.command("replay")
def replay_(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Entry ids or delivery keys; none means all.")
    ] = None,
) -> None:
    """Make dead deliveries pending again and publish them; every send-time check runs again."""
    settings = get_settings()
    app_ = make_celery(settings)
    try:
        replayed, unknown = replay(connect(), app_, settings, ids or [])
    finally:
        app_.close()
    out.print(f"replayed {len(replayed)} deliveries", highlight=False)
    for key in replayed:
        out.print(f"  {key}", highlight=False)
    if unknown:
        raise fail(f"no dead delivery for: {', '.join(unknown)}", 1)
