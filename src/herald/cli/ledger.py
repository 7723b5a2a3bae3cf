"""``herald ledger`` (the history writer) and ``herald history ACCOUNT``.

The database libraries are imported inside the commands: every other ``herald`` command
starts without them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Annotated

import redis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from herald.cli.common import connect, err, fail, make_table, out
from herald.config import get_settings
from herald.display.timefmt import local_time
from herald.holds import optouts, suppression
from herald.periodic import stop_on_signals
from herald.state import store
from herald.values.ledger_urls import display_url
from herald.values.redis_urls import display_redis_url

if TYPE_CHECKING:
    from herald.ledger.writer import DrainReport, LedgerWriter

log = logging.getLogger("herald.ledger")


def ledger(
    once: Annotated[
        bool, typer.Option("--once", help="Copy what the streams hold now, apply retention, and exit.")
    ] = False,
) -> None:
    """Copy delivery outcomes, hold changes and opt-out changes from Redis into the ledger
    (HERALD_LEDGER_URL).

    Runs until SIGTERM or Ctrl-C (finishing the batch in hand), copying every
    HERALD_LEDGER_POLL_INTERVAL seconds, trimming herald:events up to what the ledger has,
    compacting finished deliveries in Redis HERALD_COMPACT_AFTER seconds after their copy and
    deleting rows older than HERALD_LEDGER_RETENTION_DAYS once an hour. With --once: copy
    everything there is (a progress bar on stderr), compact what is due, apply retention, print
    the counts and exit.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from herald.ledger.db import LedgerUnavailable, close_ledgers, describe_error, open_ledger
    from herald.ledger.writer import LedgerWriter

    settings = get_settings()
    client = connect()
    try:
        engine = open_ledger(settings.ledger_url)
    except LedgerUnavailable as exc:
        raise fail(str(exc), 3) from None
    writer = LedgerWriter(
        client,
        engine,
        batch=settings.ledger_batch,
        retention_days=settings.ledger_retention_days,
        events_maxlen=settings.events_maxlen,
        compact_after=settings.compact_after,
    )
    try:
        if once:
            try:
                report = _drain_showing_progress(writer)
                pruned = writer.prune()
            except (redis.RedisError, SQLAlchemyError) as exc:
                raise fail(
                    f"ledger at {display_url(settings.ledger_url)}: {describe_error(exc)}", 3
                ) from None
            out.print(
                f"copied {report.copied[store.EVENTS]} events, {report.copied[suppression.AUDIT]} "
                f"hold changes and {report.copied[optouts.AUDIT]} opt-out changes; trimmed "
                f"{report.trimmed} from {store.EVENTS}; compacted {report.compacted} finished "
                f"deliveries; retention deleted {pruned.deliveries} "
                f"delivery, {pruned.holds} hold and {pruned.optouts} opt-out rows",
                highlight=False,
            )
            return
        _serve(writer, settings.ledger_poll_interval, display_url(settings.ledger_url))
    finally:
        close_ledgers()


def _drain_showing_progress(writer: LedgerWriter) -> DrainReport:
    """``writer.drain()`` with a progress bar on stderr: ``--once`` is run by a person waiting
    for it (before ``herald suppress rebuild``), and a backlog of many thousand entries takes a
    while. The total is :meth:`LedgerWriter.backlog` (none where that is not cheap to know); it
    grows with entries that arrive during the copy, and the last frame shows what was copied."""
    columns = (TextColumn("copying to the ledger"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        total = writer.backlog()
        task = bar.add_task("copy", total=total)
        done = 0

        def advance(copied: int) -> None:
            nonlocal done
            done += copied
            bar.update(task, completed=done, total=None if total is None else max(total, done))

        report = writer.drain(progress=advance)
        bar.update(task, completed=done, total=done)
    return report


def _serve(writer: LedgerWriter, poll: float, where: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    stop_on_signals(stop, "ledger writer")
    log.info(
        "ledger writer on %s (batch %d, every %.1f s, retention %d days)",
        where,
        writer.batch,
        poll,
        writer.retention_days,
    )
    writer.run(stop, poll)
    log.info("ledger writer stopped")


def history(
    account: Annotated[str, typer.Argument(help="The account.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many entries.")] = 50,
    before: Annotated[
        str | None, typer.Option(help="Only entries older than this event id (the next page).")
    ] = None,
) -> None:
    """ACCOUNT's delivery outcomes and hold changes, newest first: the ledger and what Redis
    holds that the ledger does not have yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from herald.ledger.db import LedgerUnavailable, close_ledgers, describe_error
    from herald.ledger.history import account_history, next_before

    settings = get_settings()
    client = connect()
    try:
        entries = account_history(settings, client, account, limit=limit, before=before)
    except ValueError as exc:
        raise fail(f"--before: {exc}") from None
    except LedgerUnavailable as exc:
        raise fail(str(exc), 3) from None
    except SQLAlchemyError as exc:
        raise fail(f"ledger at {display_url(settings.ledger_url)}: {describe_error(exc)}", 3) from None
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from None
    finally:
        close_ledgers()
    more = next_before(entries, limit)
    if as_json:
        out.print_json(
            data={"account_id": account, "entries": [e.to_dict() for e in entries], "next_before": more}
        )
        return
    columns = ("at", "type", "outcome", "reminder / hold", "channel", "kind", "by", "reason", "event")
    table = make_table(*columns, title=f"history of {account}", times=["at"])
    for e in entries:
        subject = e.reminder_id if e.type == "delivery" else e.hold_id
        shown = (local_time(e.at), e.type, e.outcome, subject, e.channel, e.kind, e.by, e.reason, e.event_id)
        table.add_row(*(Text(value or "-") for value in shown))
    out.print(table)
    if not entries:
        out.print(f"no history for {account}", highlight=False)
    if more:
        out.print(f"more: herald history {account} --limit {limit} --before {more}", highlight=False)
