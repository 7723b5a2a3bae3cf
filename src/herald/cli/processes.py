"""`herald worker`, `scheduler`, `api`, `flower` and `run`: herald's processes."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from herald.cli.common import fail, out
from herald.config import get_settings
from herald.state.queues import ALL_QUEUES, make_celery


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
    from herald.ops.supervise import Supervisor, numbered

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
    if settings.metrics_port:  # the host's /metrics adds up every process (herald.ops.metrics_server)
        from herald.ops.metrics_server import supervise_with_metrics

        raise typer.Exit(supervise_with_metrics(commands, settings, dict(os.environ)))
    raise typer.Exit(Supervisor(commands).run())


def scheduler() -> None:
    """Move deferred deliveries (not_before, retries) back to their queues when they are due."""
    from herald.delivery.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    Scheduler(settings, make_celery(settings)).run_forever()


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
    from herald.ops.flower import FlowerConfigError
    from herald.ops.flower import run as run_flower

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    only = settings.flower_read_only if read_only is None else read_only
    where = (host or settings.flower_host, port or settings.flower_port)
    try:
        run_flower(settings, *where, read_only=only)
    except FlowerConfigError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot listen on {where[0]}:{where[1]}: {exc}") from None


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
    from herald.ops.runner import Runner

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
