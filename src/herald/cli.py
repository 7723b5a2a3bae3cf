"""The ``herald`` command."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import redis
import typer
from jinja2 import TemplateSyntaxError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from herald import clock
from herald.catalog import CatalogError, KindSpec, load_catalog
from herald.commands import deadletter as deadletter_commands
from herald.commands import keys as keys_commands
from herald.commands import ledger as ledger_commands
from herald.commands import optout as optout_commands
from herald.commands import reconcile as reconcile_commands
from herald.commands import suppress as suppress_commands
from herald.commands.common import default_operator, err, make_table, out
from herald.config import get_settings
from herald.models import CHANNELS, Channel
from herald.producer import EnqueueInterrupted, EnqueueResult, Producer
from herald.queues import ALL_QUEUES, make_celery
from herald.redisconn import describe_failure, display_redis_url, settings_client
from herald.rendering import Renderer, RenderError
from herald.samples import sample_context
from herald.status import StatusError, read_status
from herald.timefmt import local_time, zone_note

app = typer.Typer(
    help="herald: multi-channel reminder dispatcher (SMS, email, push).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
templates_app = typer.Typer(help="Check and preview the message templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
app.add_typer(optout_commands.app, name="optout")
app.add_typer(deadletter_commands.app, name="deadletter")
app.add_typer(suppress_commands.app, name="suppress")
app.add_typer(keys_commands.app, name="keys")
app.command("ledger")(ledger_commands.ledger)
app.command("history")(ledger_commands.history)
app.command("reconcile")(reconcile_commands.reconcile)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
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
            raise _fail(f"cannot read {file}: {exc}") from exc
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
        raise _fail(
            f"stopped {where} ({handled} of {len(parsed)} reminders handled, as counted above): "
            f"{describe_failure(stopped.cause, producer.settings.redis_url)}. Running the same file "
            "again is safe: the reminders already accepted answer duplicate",
            3,
        )
    if any(r.status in ("rejected", "conflict") for _, r in results):
        raise typer.Exit(1)


def _json_error(exc: orjson.JSONDecodeError) -> list[Any]:
    from herald.validation import FieldError

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
            table.add_row(str(number), _cell(result.id or "-"), result.status, _cell(result.reason))
        out.print(table)


def _cell(value: str) -> Text:
    """Untrusted text for a table cell: no markup, control and format characters escaped."""
    return Text("".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value))


@app.command()
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
        raise _fail("give a REMINDER_ID, or --in-doubt")
    try:
        view = read_status(client, reminder_id)
    except StatusError as exc:
        if as_json:
            out.print_json(data={"id": reminder_id, "error": str(exc)})
        else:
            err.print(f"{exc}", highlight=False)
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        raise _fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from exc
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
        "channel", "state", "outcome", "reason", "attempts", "updated", times=["updated"], right=["attempts"]
    )
    for d in view["deliveries"]:
        deliveries.add_row(
            d["channel"],
            d["state"],
            d["outcome"] or "-",
            _cell(d["reason"] or "-"),
            str(d["attempts"]),
            local_time(d["updated_at"]) or "-",
        )
    out.print(deliveries)


def _print_in_doubt(client: redis.Redis, as_json: bool) -> None:
    from herald.indoubt import list_in_doubt

    rows = list_in_doubt(client, count=1000)
    if as_json:
        out.print_json(data=rows)
        return
    listing = make_table(
        "delivery", "since", "reason", title=f"in-doubt deliveries ({len(rows)})", times=["since"]
    )
    for row in rows:
        listing.add_row(row["key"], local_time(row["finished_at"]) or "-", _cell(row["reason"] or "-"))
    out.print(listing)


@app.command()
def resolve(
    delivery: Annotated[str, typer.Argument(help="The in-doubt delivery key (<reminder id>:<channel>).")],
    sent: Annotated[
        bool | None, typer.Option("--sent/--not-sent", help="What the provider says happened.")
    ] = None,
    reason: Annotated[str, typer.Option(help="What you checked (recorded).")] = "",
    by: Annotated[str, typer.Option(help="Who (recorded).")] = default_operator(),
) -> None:
    """Settle an in-doubt delivery: --sent (the provider had it) or --not-sent (outcome failed)."""
    from herald.indoubt import resolve as resolve_delivery

    if sent is None:
        raise _fail("say --sent or --not-sent")
    settings = get_settings()
    client = settings_client(settings)
    if not resolve_delivery(
        client, delivery, sent=sent, by=by, reason=reason, events_maxlen=settings.events_maxlen
    ):
        raise _fail(f"{delivery} is not in doubt", 1)
    out.print(f"{delivery}: {'sent' if sent else 'failed (not sent)'}", highlight=False)


@app.command()
def cancel(reminder_id: Annotated[str, typer.Argument(help="The reminder to withdraw.")]) -> None:
    """Withdraw a reminder (e.g. the borrower just paid): its pending deliveries end cancelled."""
    from herald.cancellation import UnknownReminder
    from herald.cancellation import cancel as cancel_reminder

    settings = get_settings()
    try:
        states = cancel_reminder(settings_client(settings), reminder_id, events_maxlen=settings.events_maxlen)
    except UnknownReminder as exc:
        raise _fail(str(exc), 1) from None
    except redis.RedisError as exc:
        raise _fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from exc
    for key, state in states.items():
        note = "" if state == "cancelled" else " (not cancelled: it had already reached this state)"
        out.print(f"{key}: {state}{note}", highlight=False)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def worker(
    ctx: typer.Context,
    processes: Annotated[
        int | None, typer.Option(help="Worker processes (default: one per core), each restarted if it dies.")
    ] = None,
    slots: Annotated[
        int | None,
        typer.Option(help="Messages each process works on at once (threads feeding its event loop)."),
    ] = None,
) -> None:
    """Run herald's Celery workers on every herald queue; other options go to ``celery worker``.

    Each process runs Celery's threads pool: SLOTS threads hand their batches to the process's
    one event loop, so a process keeps many deliveries in flight even when reminders arrive one
    at a time. With no options: one process per core, HERALD_WORKER_SLOTS slots each, task
    events on for Flower. Example: herald worker --processes 4 -Q herald.sms,herald.sms.bulk
    The host's Prometheus metrics (every process added up) are served on HERALD_METRICS_PORT.
    """
    from herald.supervise import Supervisor, numbered

    settings = get_settings()
    count = processes or os.cpu_count() or 1
    defaults = ["-P", "threads", "-c", str(slots or settings.worker_slots), "-E"]
    defaults += ["--without-gossip", "--without-mingle", "-l", "INFO"]
    if not any(a in ("-Q", "--queues") or a.startswith("--queues=") for a in ctx.args):
        defaults += ["-Q", ",".join(ALL_QUEUES)]
    base = [sys.executable, "-m", "celery", "-A", "worker", "worker", *defaults]
    if count == 1 and not settings.metrics_port:
        argv = [*base, *ctx.args]
        os.execv(sys.executable, argv)  # noqa: S606 - becomes the worker process
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    commands = [[*base, *numbered(ctx.args, i, count)] for i in range(count)]
    if settings.metrics_port:  # the host's /metrics adds up every process (herald.metrics_server)
        from herald.metrics_server import supervise_with_metrics

        raise typer.Exit(supervise_with_metrics(commands, settings, dict(os.environ)))
    raise typer.Exit(Supervisor(commands).run())


@app.command()
def scheduler() -> None:
    """Move deferred deliveries (not_before, retries) back to their queues when they are due."""
    from herald.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    Scheduler(settings, make_celery(settings)).run_forever()


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (HERALD_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HERALD_API_PORT).")] = None,
) -> None:
    """Run the HTTP API on uvicorn: /v1 (API keys; see `herald keys`), webhooks, /healthz, /docs."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "herald.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        proxy_headers=True,
    )


@app.command()
def flower(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (HERALD_FLOWER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HERALD_FLOWER_PORT).")] = None,
    read_only: Annotated[
        bool | None,
        typer.Option(
            "--read-only/--read-write", help="Forbid task and worker control (HERALD_FLOWER_READ_ONLY)."
        ),
    ] = None,
) -> None:
    """Run Flower on herald's broker and Celery configuration; basic auth is required.

    Set HERALD_FLOWER_PASSWORD (and HERALD_FLOWER_USER); its /metrics and /healthcheck need the
    same credentials as every other page.
    """
    from herald.flower import FlowerConfigError
    from herald.flower import run as run_flower

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    only = settings.flower_read_only if read_only is None else read_only
    where = (host or settings.flower_host, port or settings.flower_port)
    try:
        run_flower(settings, *where, read_only=only)
    except FlowerConfigError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot listen on {where[0]}:{where[1]}: {exc}") from None


@templates_app.command("check")
def templates_check() -> None:
    """Render every template with its kind's example.json and report errors with file and line."""
    settings = get_settings()
    try:
        catalog = load_catalog(settings.templates_dir)
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    renderer = Renderer(catalog, settings)
    table = Table(title=f"templates in {settings.templates_dir}")
    for column in ("kind", "channel", "locale", "encoding", "segments", "characters"):
        table.add_column(column, justify="right" if column in ("segments", "characters") else "left")
    errors: list[str] = []
    count = 0
    now = clock.now()
    for spec in catalog.kinds.values():
        for channel in CHANNELS:
            for locale in sorted(spec.locales.get(channel, ())):
                context = renderer.context(sample_context(spec, locale, now), spec.category)
                try:
                    rendered = renderer.render(spec.name, channel, context)
                except RenderError as exc:
                    errors.append(str(exc))
                    table.add_row(spec.name, channel, locale, "[red]error[/red]", "-", "-")
                    continue
                count += 1
                seg = rendered.segments
                chars = sum(len(v) for v in rendered.content().values() if isinstance(v, str))
                table.add_row(
                    spec.name,
                    channel,
                    locale,
                    seg.encoding if seg else "-",
                    str(seg.segments) if seg else "-",
                    str(seg.characters if seg else chars),
                )
    out.print(table)
    out.print(f"{count} renderings, {len(errors)} errors", highlight=False)
    for message in errors:
        err.print(f"[red]error:[/red] {message}", highlight=False)
    if errors or count == 0:
        raise typer.Exit(1)


_FORMATS = {
    "amount": "a decimal amount such as 1234.50",
    "date": "an ISO date such as 2026-11-20",
    "number": "a number",
    "currency": "an ISO 4217 code such as CNY",
}


def _required_where(spec: KindSpec, templates: list[str]) -> str:
    """``sms (zh-CN), email``: the channels (and, where not all, the locales) whose templates
    require a field."""
    parts = []
    for channel in CHANNELS:
        locales = sorted({t.split(".")[1] for t in templates if t.startswith(f"{channel}.")})
        if locales:
            every = len(locales) == len(spec.locales.get(channel, ()))
            parts.append(channel if every else f"{channel} ({', '.join(locales)})")
    return ", ".join(parts) or "-"


@templates_app.command("fields")
def templates_fields(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. overdue_notice.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """List the fields of `data` a kind's templates show: required or optional, their format,
    which templates require them, and the kind's example value.

    Intake refuses a reminder whose `data` lacks a field the templates of its channels require
    (in the recipient's locale), or holds one in a form they cannot show.
    """
    from herald.fields import kind_fields

    settings = get_settings()
    try:
        catalog = load_catalog(settings.templates_dir)
        spec = catalog.get(kind)
        uses = kind_fields(catalog, spec)
    except (CatalogError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from exc
    except (TemplateSyntaxError, OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{kind}: a template cannot be read: {exc}", 1) from exc
    example = spec.example_data(clock.now().date())
    if as_json:
        rows = [
            {
                "field": use.name,
                "required": use.required,
                "format": use.format,
                "required_by": templates,
                "example": example.get(use.name),
            }
            for use, templates in uses
        ]
        out.print_json(data={"kind": kind, "category": spec.category, "fields": rows})
        return
    table = Table(title=f"data fields of {kind} ({spec.category})", title_justify="left")
    for column in ("field", "format", "required by", "example"):
        table.add_column(column, overflow="fold")
    for use, templates in uses:
        table.add_row(
            use.name,
            use.format,
            _required_where(spec, templates) if use.required else "optional",
            _cell(json.dumps(example[use.name], ensure_ascii=False)) if use.name in example else "-",
        )
    out.print(table)
    shown = sorted({use.format for use, _ in uses} - {"text"})
    for fmt in shown:
        out.print(f"{fmt}: {_FORMATS[fmt]}", highlight=False)


@app.command()
def preview(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. overdue_notice.")],
    channel: Annotated[str, typer.Option("--channel", "-c", help="sms, email or push.")] = "sms",
    locale: Annotated[str, typer.Option("--locale", "-l", help="e.g. zh-CN or en.")] = "zh-CN",
    data: Annotated[
        Path | None, typer.Option("--data", help="A JSON file to use as `data` instead of example.json.")
    ] = None,
) -> None:
    """Print one rendering of a kind on a channel in a locale."""
    settings = get_settings()
    if channel not in CHANNELS:
        raise _fail(f"--channel must be one of {', '.join(CHANNELS)}")
    try:
        catalog = load_catalog(settings.templates_dir)
        spec = catalog.get(kind)
    except (CatalogError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from exc
    sample = sample_context(spec, locale, clock.now())
    sample["to"] = {**sample["to"], "locale": locale}
    if data is not None:
        try:
            sample["data"] = json.loads(data.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(f"--data {data}: {exc}") from exc
    renderer = Renderer(catalog, settings)
    ch: Channel = channel
    try:
        rendered = renderer.render(kind, ch, renderer.context(sample, spec.category))
    except RenderError as exc:
        raise _fail(str(exc), 1) from exc
    out.print(f"[dim]{kind} / {channel} / {rendered.locale}[/dim]", highlight=False)
    for name, value in rendered.content().items():
        out.print(f"[bold]{name}:[/bold]", highlight=False)
        out.print(value, markup=False, highlight=False, soft_wrap=True)
    if rendered.segments:
        s = rendered.segments
        out.print(
            f"[dim]{s.encoding}, {s.segments} segment(s), {s.characters} characters[/dim]",
            highlight=False,
        )


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Smoke mode: deliver the samples, check, stop, exit.")
    ] = False,
    home: Annotated[Path, typer.Option(help="Where Redis data, logs and the outbox live.")] = Path("./var"),
    redis_port: Annotated[int, typer.Option(help="Port of the embedded redis-server.")] = 6390,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the samples.")] = 60.0,
    api_port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8000,
    show_outbox: Annotated[
        bool, typer.Option("--show-outbox", help="Print every sample message, not one per channel.")
    ] = False,
) -> None:
    """Run herald on embedded defaults: its own Redis, the worker, the scheduler, the reconciler,
    the ledger writer, the API with the operator page, Flower and the sample reminders.

    It writes HOME/herald.env for other shells (`source var/herald.env` puts `herald` on PATH
    and points it at this Redis and ledger) and removes it when it stops.
    """
    from herald.runner import Runner

    runner = Runner(
        home=home,
        redis_port=redis_port,
        timeout=timeout,
        console=out,
        api_port=api_port,
        show_outbox=show_outbox,
    )
    code = runner.main(once=once)
    raise typer.Exit(code)


def main() -> None:
    """Entry point of the ``herald`` console script."""
    app()


if __name__ == "__main__":
    main()
