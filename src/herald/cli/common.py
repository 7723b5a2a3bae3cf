"""Shared pieces of the command line: consoles, tables, errors, Redis."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Collection
from typing import TextIO

import redis
import typer
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from herald.config import get_settings
from herald.display.timefmt import zone_note
from herald.state.redisconn import settings_client
from herald.values.redis_urls import display_redis_url

PIPED_WIDTH = 200
"""Columns of a console whose stream is not a terminal (a pipe, a file, a test) when COLUMNS
is not set. Rich would assume 80 and fold every table row over several lines; a wide page keeps
a row on one line for grep, awk and less -S, and tables still take only the width they need."""

TIME_WIDTH = len("2026-12-06 22:47:03 +08:00")
"""A time as :func:`herald.display.timefmt.local_time` writes it: kept whole on one line where it fits."""

DATE_WIDTH = len("2026-12-06")
"""Where a time cannot be whole, it breaks at its spaces (date, clock, offset) if it can."""


def _console(stream: TextIO, *, stderr: bool = False) -> Console:
    """A console that sizes itself to the terminal, to COLUMNS, or else to ``PIPED_WIDTH``."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced by something without isatty
        terminal = False
    wide = not terminal and not os.environ.get("COLUMNS", "").isdigit()
    return Console(stderr=stderr, width=PIPED_WIDTH if wide else None)


out = _console(sys.stdout)
err = _console(sys.stderr, stderr=True)


class PeopleTable(Table):
    """A table that, when it is wider than the console, narrows the way people read it.

    Rich narrows an overflowing table by folding every column alike, splitting header words
    (``attem`` over ``pts``) and times; a ``min_width`` on the columns makes it crop the table's
    right edge instead. This one decides the widths itself before Rich renders: the widest
    columns give way first (long text folds), no column gets narrower than the longest word of
    its header, and a time column keeps its time whole, or where that cannot fit, breaks it at
    its spaces, or at last folds it. When the headers' words alone do not fit, Rich's own
    folding applies.
    """

    def __init__(self, *, title: str | None, caption: str | None, times: Collection[str]) -> None:
        super().__init__(title=title, caption=caption)
        self.times = frozenset(times)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render with :meth:`fitted` widths (the columns' own widths are restored after)."""
        widths = self.fitted(console, options)
        own = [column.width for column in self.columns]
        try:
            if widths is not None:
                for column, width in zip(self.columns, widths, strict=True):
                    column.width = width
            yield from super().__rich_console__(console, options)
        finally:
            for column, before in zip(self.columns, own, strict=True):
                column.width = before

    def fitted(self, console: Console, options: ConsoleOptions) -> list[int] | None:
        """Content widths for ``options.max_width``; None when the table fits as it is (or
        cannot fit without splitting header words)."""
        columns = self.columns
        room = options.max_width - (len(columns) + 1) - 2 * len(columns)  # borders; a space each side
        natural = [
            max(Measurement.get(console, options, cell).maximum for cell in (column.header, *column.cells))
            for column in columns
        ]
        if sum(natural) <= room:
            return None
        words = [max((cell_len(w) for w in str(column.header).split()), default=1) for column in columns]
        for time_floor in (TIME_WIDTH, DATE_WIDTH, 0):
            floors = [
                min(max(word, time_floor) if column.header in self.times else word, width)
                for column, word, width in zip(columns, words, natural, strict=True)
            ]
            if sum(floors) <= room:
                return _narrowed(natural, floors, room)
        return None


def _narrowed(widths: list[int], floors: list[int], room: int) -> list[int]:
    """``widths`` narrowed to add up to ``room``, the widest first, none below its floor."""
    widths = list(widths)
    excess = sum(widths) - room
    while excess > 0:
        top = max(w for w, floor in zip(widths, floors, strict=True) if w > floor)
        for i, (w, floor) in enumerate(zip(widths, floors, strict=True)):
            if w == top and w > floor and excess > 0:
                widths[i] -= 1
                excess -= 1
    return widths


def make_table(
    *columns: str,
    title: str | None = None,
    times: Collection[str] = (),
    right: Collection[str] = (),
) -> PeopleTable:
    """A table for people (a :class:`PeopleTable`): header words are never split across lines.

    The columns named in ``times`` hold times from :func:`herald.display.timefmt.local_time`: they are
    kept whole where they fit, and the caption names their zone (``times in Asia/Shanghai``)
    once for the table. Columns in ``right`` are right-aligned (counts). Long text folds.
    """
    unknown = (set(times) | set(right)) - set(columns)
    if unknown:
        raise ValueError(f"not columns of this table: {sorted(unknown)}")
    built = PeopleTable(title=title, caption=zone_note() if times else None, times=times)
    for header in columns:
        built.add_column(header, overflow="fold", justify="right" if header in right else "left")
    return built


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error; return the Exit to raise."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def connect() -> redis.Redis:
    """A Redis client on HERALD_REDIS_URL that has answered a PING."""
    settings = get_settings()
    client = settings_client(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from exc
    return client


def default_operator() -> str:
    """Who runs the command, for audit trails: the login name, or ``operator`` where there is
    none (a container running as a user with no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def cell(value: str) -> Text:
    """Untrusted text for a table cell: no markup, control and format characters escaped."""
    return Text("".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value))
