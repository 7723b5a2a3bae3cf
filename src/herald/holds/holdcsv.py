"""Holds from operators' input: one form, one CSV line, or a whole CSV file.

The CSV format is the one ``herald suppress import`` reads and ``herald suppress export``
writes: a header naming at least ``account_id`` and ``reason``, then one hold a line::

    account_id,reason,until,agreement,categories,by
    acct-1029,plan signed,,AGR-77,collection,ops-li
    acct-2041,hardship review,2026-12-31,,collection;agreement,ops-li

``until`` is a date (the end of that day in the default time zone) or a time with an offset;
``categories`` is separated by spaces or ``;`` (default ``collection``). A bad line is
reported with its number, the field and a message naming it; the good lines are applied. An
imported line's hold id is derived from its content, so importing the same file again
changes nothing.

A cell that a spreadsheet would run as a formula (one starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return: a reason typed by an operator, an id from upstream) is written with a
leading ``'`` by the export, which spreadsheets show as text; the import takes that ``'`` off
again, so an exported file imports as the same holds.

Used by the command line and the operator page alike.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from herald.display.i18n import N_
from herald.holds.suppression import CATEGORIES, Hold, SuppressionStore, UntilError, hold_id, parse_until
from herald.models import ID_PATTERN, MAX_ID
from herald.state import store

CSV_COLUMNS = ("account_id", "reason", "until", "agreement", "categories", "by")
REQUIRED_COLUMNS = ("account_id", "reason")
IMPORT_BATCH = 1000
MAX_REASON = 1000
_IDENTIFIER = re.compile(ID_PATTERN)


UNTIL_PROBLEMS = {
    "not_a_time": N_("until: %(value)s is neither a date (2026-12-31) nor a time with an offset"),
    "no_offset": N_("until: %(value)s needs an offset, e.g. 2026-12-31T18:00:00+08:00"),
}
"""What a hold's unreadable end is told as, by :class:`UntilError` kind."""


class HoldInputError(ValueError):
    """One field of a hold is wrong; ``field`` names it and the message says why.

    ``template`` and ``params`` are the message before formatting (``template % params``), so a
    page can show it in its reader's language (the templates are marked for translation)."""

    def __init__(self, field: str, template: str, params: Mapping[str, object] | None = None) -> None:
        message = template % dict(params) if params else template
        super().__init__(message)
        self.field = field
        self.message = message
        self.template = template
        self.params = dict(params or {})


class CsvHeaderError(ValueError):
    """The file's header lacks a required column, or the file is not CSV: nothing in it can be
    read. ``template % params`` is the message (``template`` marked for translation)."""

    def __init__(self, template: str, params: Mapping[str, object]) -> None:
        super().__init__(template % dict(params))
        self.template = template
        self.params = dict(params)


@dataclass(frozen=True)
class LineError:
    """A line that was not applied: its number in the file, the field and the message."""

    line: int
    field: str
    message: str
    template: str = ""
    """The message before formatting with ``params`` (for a translation); empty: ``message``."""
    params: dict[str, object] = dataclasses.field(default_factory=dict)  # `field` is a field here


@dataclass
class ImportReport:
    """What an import did: counts per action (``added``, ``replaced``, ``unchanged``) and bad lines."""

    lines: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"added": 0, "replaced": 0, "unchanged": 0})
    errors: list[LineError] = field(default_factory=list)

    SUMMARY: ClassVar[str] = N_(
        "%(added)s added, %(replaced)s replaced, %(unchanged)s unchanged, %(bad)s bad lines"
    )
    """:meth:`summary` before formatting with :meth:`summary_params` (for a translation)."""

    def summary_params(self) -> dict[str, object]:
        """The counts :data:`SUMMARY` names."""
        return {**self.counts, "bad": len(self.errors)}

    def summary(self) -> str:
        """``3 added, 0 replaced, 1 unchanged, 1 bad lines``."""
        return self.SUMMARY % self.summary_params()


def parse_categories(values: Iterable[str] | None) -> tuple[str, ...]:
    """The categories named (default ``collection``), in order, without repeats."""
    chosen = tuple(dict.fromkeys(v for v in (values or []) if v)) or ("collection",)
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise HoldInputError(
            "categories",
            N_("unknown categories %(unknown)s (known: %(known)s)"),
            {"unknown": ", ".join(unknown), "known": ", ".join(CATEGORIES)},
        )
    return chosen


def _identifier(name: str, value: str) -> str:
    value = value.strip()
    if len(value) > MAX_ID or not _IDENTIFIER.match(value):
        raise HoldInputError(
            name,
            N_(
                "%(name)s %(value)s must be 1 to %(max)s letters, digits or ._:@- "
                "(starting with a letter or digit)"
            ),
            {"name": name, "value": repr(value[:40]), "max": MAX_ID},
        )
    return value


def build_hold(
    account: str,
    reason: str,
    until: str | None,
    agreement: str | None,
    categories: tuple[str, ...],
    by: str,
    *,
    timezone: str,
    stable_id: bool = False,
) -> Hold:
    """A checked hold; raises :class:`HoldInputError` naming the first bad field.

    ``stable_id`` derives an operator hold's id from its content (imports: the same line twice
    is one hold); otherwise it is fresh. An agreement hold's id is its agreement.
    """
    if not account.strip():
        raise HoldInputError("account_id", N_("account_id is required"))
    account = _identifier("account_id", account)
    reason = reason.strip()
    if not reason:
        raise HoldInputError("reason", N_("reason is required"))
    if len(reason) > MAX_REASON:
        raise HoldInputError("reason", N_("reason is longer than %(max)s characters"), {"max": MAX_REASON})
    try:
        ends = parse_until(until, timezone)
    except UntilError as exc:
        template = UNTIL_PROBLEMS[exc.kind]
        raise HoldInputError("until", template, {"value": repr(exc.value)}) from None
    agreement = _identifier("agreement", agreement) if agreement and agreement.strip() else None
    if agreement:
        ident = hold_id("agreement", agreement)
    elif stable_id:  # re-importing the same line must not add a second hold
        digest = hashlib.sha256(f"{account}|{reason}|{until}|{','.join(categories)}".encode()).hexdigest()
        ident = f"operator:{digest[:12]}"
    else:
        ident = hold_id("operator", None)
    return Hold(
        id=ident,
        account_id=account,
        source="agreement" if agreement else "operator",
        reason=reason,
        categories=categories,
        agreement=agreement,
        until=ends,
        by=by,
    )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a spreadsheet cell that runs as a formula begins (OWASP's list for CSV injection)."""


def spreadsheet_safe(value: str) -> str:
    """``value`` as an exported cell: with a ``'`` in front when it would start a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def from_spreadsheet_safe(value: str) -> str:
    """An imported cell with the ``'`` the export put in front of a formula-like value removed."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def export_row(account: str, hold: Hold) -> list[str]:
    """One hold as the export writes it (the import's columns, formula-like cells defused)."""
    until = store.iso(hold.until)
    cells = [account, hold.reason, until, hold.agreement or "", " ".join(hold.categories), hold.by]
    return [spreadsheet_safe(cell) for cell in cells]


def read_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    """The data lines of a CSV text, each with its line number (the header is line 1).

    Raises :class:`CsvHeaderError` when the header lacks ``account_id`` or ``reason``.
    """
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    missing = set(REQUIRED_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise CsvHeaderError(
            N_("the header must name %(missing)s (columns: %(columns)s)"),
            {"missing": ", ".join(sorted(missing)), "columns": ", ".join(CSV_COLUMNS)},
        )
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            cells = {
                k: from_spreadsheet_safe(v)
                for k, v in row.items()
                if isinstance(k, str) and isinstance(v, str)
            }
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise CsvHeaderError(
            N_("line %(line)s: not valid CSV: %(problem)s"), {"line": reader.line_num, "problem": exc}
        ) from None
    return rows


def parse_row(number: int, row: dict[str, str], *, by: str, timezone: str) -> Hold | LineError:
    """One CSV line as a hold (``by`` where the line names nobody), or the line's error."""
    try:
        raw_categories = (row.get("categories") or "").replace(";", " ").split()
        return build_hold(
            row.get("account_id") or "",
            row.get("reason") or "",
            row.get("until") or None,
            row.get("agreement") or None,
            parse_categories(raw_categories),
            (row.get("by") or "").strip() or by,
            timezone=timezone,
            stable_id=True,
        )
    except HoldInputError as exc:
        return LineError(number, exc.field, exc.message, exc.template, exc.params)


def import_holds(
    holds: SuppressionStore,
    rows: list[tuple[int, dict[str, str]]],
    *,
    by: str,
    timezone: str,
    force_by: bool = False,
    batch: int = IMPORT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Apply ``rows`` (from :func:`read_rows`) in batches; bad lines are reported, good ones kept.

    ``by`` is who, where a line names nobody; with ``force_by`` it is who for every line (the
    operator page records the signed-in operator). ``progress(done, total)`` is called after
    each batch, with the number of lines handled so far.
    """
    report = ImportReport(lines=len(rows))
    pending: list[Hold] = []
    done = 0

    def flush() -> None:
        for change in holds.add_many(pending):
            report.counts[change.action] = report.counts.get(change.action, 0) + 1
        pending.clear()

    for number, row in rows:
        if force_by:
            row = {**row, "by": by}
        parsed = parse_row(number, row, by=by, timezone=timezone)
        if isinstance(parsed, LineError):
            report.errors.append(parsed)
        else:
            pending.append(parsed)
        done += 1
        if done % batch == 0:
            flush()
            if progress is not None:
                progress(done, len(rows))
    flush()
    if progress is not None and done % batch:
        progress(done, len(rows))
    return report
