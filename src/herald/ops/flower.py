"""``herald flower``: Flower on herald's broker and Celery configuration, behind basic auth.

Flower is built here from :func:`herald.state.queues.make_celery`, so it loads the same broker URL,
transport and ``visibility_timeout`` as every other herald process (the shortest one loaded
would win). Basic auth is required: without ``HERALD_FLOWER_PASSWORD`` it refuses to start.

Flower 2.2 leaves ``/metrics`` and ``/healthcheck`` open even with basic auth
(mher/flower#1342): here both demand the same credentials as every other page (Prometheus
scrapes Flower with ``basic_auth`` in its scrape configuration). It runs read-only by default
(``HERALD_FLOWER_READ_ONLY``): no task sent, revoked or rate-limited and no worker shut down
from the browser; herald's workers are supervised by ``herald worker``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import tornado.web

from herald.config import Settings
from herald.state.queues import make_celery

log = logging.getLogger("herald.ops.flower")


class FlowerConfigError(ValueError):
    """Flower cannot start with this configuration (the message names the setting)."""


def basic_auth(settings: Settings) -> str:
    """``user:password`` for Flower's basic auth; refuses to go on without a password."""
    password = settings.flower_password.get_secret_value() if settings.flower_password else ""
    if not password:
        raise FlowerConfigError(
            "HERALD_FLOWER_PASSWORD is not set: herald flower requires basic auth; set "
            f"HERALD_FLOWER_PASSWORD (and HERALD_FLOWER_USER, now {settings.flower_user!r})"
        )
    return f"{settings.flower_user}:{password}"


def _require_login(handler: tornado.web.RequestHandler) -> None:
    """``prepare`` for Flower's open handlers: the same basic auth as its other pages."""
    if not handler.current_user:  # Flower's get_current_user raises 401 on bad credentials
        raise tornado.web.HTTPError(401)


def guard_open_handlers() -> None:
    """Make Flower's ``/metrics`` and ``/healthcheck`` require login (mher/flower#1342)."""
    from flower.views import monitor

    for handler in (monitor.Metrics, monitor.Healthcheck):
        handler.prepare = _require_login


def build(settings: Settings, host: str, port: int, *, read_only: bool) -> Any:
    """The Flower application (not yet listening), configured for herald."""
    from flower.app import Flower
    from flower.options import options
    from flower.urls import settings as tornado_settings

    options.basic_auth = [basic_auth(settings)]
    options.address = host
    options.port = port
    options.read_only = read_only
    options.persistent = False
    options.enable_events = True
    options.xheaders = True
    guard_open_handlers()
    return Flower(capp=make_celery(settings), options=options, **tornado_settings)


def run(settings: Settings, host: str, port: int, *, read_only: bool) -> None:
    """Serve Flower until SIGTERM or SIGINT."""
    basic_auth(settings)  # the clear refusal comes before anything is built
    flower = build(settings, host, port, read_only=read_only)
    bound = flower.start_http_server()
    loop: asyncio.AbstractEventLoop = flower.io_loop.asyncio_loop
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, flower.stop)
    log.info(
        "Flower at http://%s:%s/ (basic auth: %s; read-only: %s) on broker %s",
        host,
        bound,
        settings.flower_user,
        read_only,
        flower.broker_uri,
    )
    flower.start()
