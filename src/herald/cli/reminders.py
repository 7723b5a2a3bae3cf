"""`herald enqueue`, `status`, `resolve` and `cancel`: reminders and their deliveries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import redis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from herald.cli.common import cell, default_operator, err, fail, make_table, out
from herald.config import get_settings
from herald.display.timefmt import local_time, zone_note
from herald.intake.producer import EnqueueInterrupted, EnqueueResult, Producer
from herald.state import store
from herald.state.redisconn import describe_failure, settings_client
from herald.state.status import StatusError, read_status
from herald.values.redis_urls import display_redis_url


def enqueue(
    file: Annotated[str, typer.Argument(help="A JSON Lines file of reminders, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one result per line as JSON.")] = False,
) -> None:
    """Validate, store and publish reminders from a JSON Lines file (one reminder per line).

    Prints a summary of accepted, duplicate, rejected and conflicting reminders, with the line
    number, id and reason of each one not accepted. Exits 1 if any was rejected or conflicted.
    """
    if file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {file}: {exc}") from exc
    # Lines end at "\n" only: a JSON string may hold U+2028 or U+0085 as they are, and a line
    # that is not UTF-8 is rejected on its own (orjson checks), never the whole file.
    lines = raw.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    parsed: list[tuple[int, Any]] = []
    results: list[tuple[int, EnqueueResult]] = []
    for number, line in numbered:
        try:
            parsed.append((number, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            results.append((number, EnqueueResult("rejected", None, _json_error(exc))))
    producer = Producer()
    stopped: EnqueueInterrupted | None = None
    try:
        with Progress(
            TextColumn("enqueueing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=as_json,
            disable=not parsed,
        ) as progress:
            task = progress.add_task("enqueue", total=len(parsed))
            answers = producer.enqueue_many(
                (obj for _, obj in parsed), progress=lambda n: progress.advance(task, n)
            )
    except EnqueueInterrupted as exc:
        stopped, answers = exc, exc.results
    finally:
        producer.close()
    results.extend(zip((n for n, _ in parsed), answers, strict=False))
    results.sort(key=lambda item: item[0])
    if as_json:
        for number, result in results:
            # one result per line, ASCII-escaped: an echoed id holding U+2028 or U+0085 must not
            # split a line for a reader that splits on every line break Unicode knows
            out.print_json(data={"line": number, **result.as_dict()}, indent=None, ensure_ascii=True)
    else:
        _print_enqueue_summary(results)
    if stopped is not None:
        handled = len(stopped.results)
        where = f"after line {parsed[handled - 1][0]}" if handled else "before the first reminder"
        raise fail(
            f"stopped {where} ({handled} of {len(parsed)} reminders handled, as counted above): "
            f"{describe_failure(stopped.cause, producer.settings.redis_url)}. Running the same file "
            "again is safe: the reminders already accepted answer duplicate",
            3,
        )
    if any(r.status in ("rejected", "conflict") for _, r in results):
        raise typer.Exit(1)


def _json_error(exc: orjson.JSONDecodeError) -> list[Any]:
    from herald.intake.validation import FieldError

    return [FieldError("", f"not valid JSON: {exc}")]


def _print_enqueue_summary(results: list[tuple[int, EnqueueResult]]) -> None:
    counts = {s: 0 for s in ("accepted", "duplicate", "rejected", "conflict")}
    for _, result in results:
        counts[result.status] += 1
    out.print(
        ", ".join(f"[bold]{count}[/bold] {status}" for status, count in counts.items()),
        highlight=False,
    )
    problems = [(n, r) for n, r in results if r.status in ("rejected", "conflict")]
    if problems:
        table = Table(title="not accepted", show_lines=False)
        table.add_column("line", justify="right")
        table.add_column("id")
        table.add_column("status")
        table.add_column("reason", overflow="fold")
        for number, result in problems:
            table.add_row(str(number), cell(result.id or "-"), result.status, cell(result.reason))
        out.print(table)


def status(
    reminder_id: Annotated[str | None, typer.Argument(help="The reminder's id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    in_doubt: Annotated[
        bool, typer.Option("--in-doubt", help="List the in-doubt deliveries instead.")
    ] = False,
) -> None:
    """Show each channel's state, outcome, reason and times. Exits 1 for an unknown id.

    With --in-doubt, list the deliveries the provider may have accepted (settle them with
    `herald resolve`).
    """
    settings = get_settings()
    client = settings_client(settings)
    if in_doubt:
        _print_in_doubt(client, as_json)
        return
    if reminder_id is None:
        raise fail("give a REMINDER_ID, or --in-doubt")
    try:
        view = read_status(client, reminder_id)
    except StatusError as exc:
        if as_json:
            out.print_json(data={"id": reminder_id, "error": str(exc)})
        else:
            err.print(f"{exc}", highlight=False)
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from exc
    if as_json:
        out.print_json(data=view)
        return
    out.print(
        f"reminder [bold]{view['id']}[/bold]  account {view['account_id']}  kind {view['kind']} "
        f"({view['category']})  accepted {local_time(view['accepted_at']) or '-'}"
        + (f"  [yellow]cancelled {local_time(view['cancelled_at'])}[/yellow]" if view["cancelled_at"] else "")
        + f"  ({zone_note()})",
        highlight=False,
    )
    deliveries = make_table(
        "channel",
        "state",
        "outcome",
        "provider",
        "reason",
        "attempts",
        "updated",
        times=["updated"],
        right=["attempts"],
    )
    for d in view["deliveries"]:
        deliveries.add_row(
            d["channel"],
            d["state"],
            d["outcome"] or "-",
            d.get("provider") or "-",
            cell(d["reason"] or "-"),
            str(d["attempts"]),
            local_time(d["updated_at"]) or "-",
        )
    out.print(deliveries)
    _print_breakers(client)


def _print_breakers(client: redis.Redis) -> None:
    """The providers' breakers that opened in the last day: when, until when, and why."""
    from herald.routing.breaker import BREAKERS, openings

    now = store.redis_now(client)  # openings are written on Redis's clock
    recent = [o for o in openings(client.hgetall(BREAKERS)) if o.until > now - 86400]
    if not recent:
        return
    table = make_table(
        "provider", "opened", "until", "why", title="provider breakers (last 24 h)", times=["opened", "until"]
    )
    for o in recent:
        state = " [red](open)[/red]" if o.until > now else ""
        table.add_row(
            o.provider + state,
            local_time(o.opened_at),
            local_time(o.until),
            cell(o.reason),
        )
    out.print(table)


def _print_in_doubt(client: redis.Redis, as_json: bool) -> None:
    from herald.delivery.indoubt import list_in_doubt

    rows = list_in_doubt(client, count=1000)
    if as_json:
        out.print_json(data=rows)
        return
    listing = make_table(
        "delivery", "since", "reason", title=f"in-doubt deliveries ({len(rows)})", times=["since"]
    )
    for row in rows:
        listing.add_row(row["key"], local_time(row["finished_at"]) or "-", cell(row["reason"] or "-"))
    out.print(listing)


def resolve(
    delivery: Annotated[str, typer.Argument(help="The in-doubt delivery key (<reminder id>:<channel>).")],
    sent: Annotated[
        bool | None, typer.Option("--sent/--not-sent", help="What the provider says happened.")
    ] = None,
    reason: Annotated[str, typer.Option(help="What you checked (recorded).")] = "",
    by: Annotated[str, typer.Option(help="Who (recorded).")] = default_operator(),
) -> None:
    """Settle an in-doubt delivery: --sent (the provider had it) or --not-sent (outcome failed)."""
    from herald.delivery.indoubt import resolve as resolve_delivery

    if sent is None:
        raise fail("say --sent or --not-sent")
    settings = get_settings()
    client = settings_client(settings)
    if not resolve_delivery(
        client, delivery, sent=sent, by=by, reason=reason, events_maxlen=settings.events_maxlen
    ):
        raise fail(f"{delivery} is not in doubt", 1)
    out.print(f"{delivery}: {'sent' if sent else 'failed (not sent)'}", highlight=False)


def cancel(reminder_id: Annotated[str, typer.Argument(help="The reminder to withdraw.")]) -> None:
    """Withdraw a reminder (e.g. the borrower just paid): its pending deliveries end cancelled."""
    from herald.intake.cancellation import UnknownReminder
    from herald.intake.cancellation import cancel as cancel_reminder

    settings = get_settings()
    try:
        states = cancel_reminder(settings_client(settings), reminder_id, events_maxlen=settings.events_maxlen)
    except UnknownReminder as exc:
        raise fail(str(exc), 1) from None
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from exc
    for key, state in states.items():
        note = "" if state == "cancelled" else " (not cancelled: it had already reached this state)"
        out.print(f"{key}: {state}{note}", highlight=False)
