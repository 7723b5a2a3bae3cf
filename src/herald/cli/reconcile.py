"""``herald reconcile``: re-publish accepted deliveries the broker lost (see herald.ops.reconciler)."""

from __future__ import annotations

import logging
from typing import Annotated

import redis
import typer
from kombu.exceptions import OperationalError

from herald.cli.common import connect, fail, out
from herald.config import get_settings
from herald.state.queues import make_celery
from herald.values.redis_urls import display_redis_url


def reconcile(
    once: Annotated[
        bool,
        typer.Option("--once", help="Re-publish everything overdue now (still at the rate), then exit."),
    ] = False,
) -> None:
    """Re-publish accepted deliveries whose deadline passed: messages the broker lost.

    Runs until SIGTERM or Ctrl-C, a pass every HERALD_RECONCILE_INTERVAL seconds, re-publishing
    at most HERALD_RECONCILE_RATE keys a second. Deliveries waiting in the scheduler, being
    sent under a lease, or finished are never re-published. With --once: handle everything
    overdue now, print the counts and exit.
    """
    from herald.ops.reconciler import Reconciler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    client = connect()
    app = make_celery(settings)
    reconciler = Reconciler(settings, app, client)
    try:
        if once:
            try:
                report = reconciler.drain()
            except (redis.RedisError, OperationalError) as exc:
                where = display_redis_url(settings.redis_url)
                raise fail(f"cannot reach Redis at {where}: {exc}", 3) from exc
            out.print(report.summary(), highlight=False)
            return
        reconciler.run_forever()
    finally:
        app.close()
        client.close()
