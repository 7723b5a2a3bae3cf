"""The FastAPI application: ``create_app()`` (uvicorn's factory) and ``herald api``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from herald.api import aliyun_hooks, twilio_hooks, unsubscribe
from herald.api import history as history_api
from herald.api import metrics as metrics_api
from herald.api import operator as operator_page
from herald.api import v1 as v1_api
from herald.api.bodylimit import BodyLimit
from herald.api.docs import documented_app
from herald.config import Settings, get_settings
from herald.rendering.links import UNSUBSCRIBE_PATH
from herald.state.receipts import Receipts
from herald.state.redisconn import settings_client


class HideUnsubscribeTokens(logging.Filter):
    """Access-log lines show unsubscribe links without their token: the token names the address.

    Parameters: none. Hook: ``filter`` rewrites the path of uvicorn's access record (its third
    argument) and lets every record through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Cut the token off an unsubscribe path."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            head, found, _ = args[2].partition(UNSUBSCRIBE_PATH + "/")
            if found:
                record.args = (*args[:2], head + found + "…", *args[3:])
        return True


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP app on ``settings`` (the environment's by default)."""
    settings = settings or get_settings()
    app = documented_app(title="herald", version="0.1.0", description="Reminder dispatcher HTTP API.")
    app.state.settings = settings
    app.state.redis = settings_client(settings)
    app.state.receipts = Receipts(app.state.redis, settings.events_maxlen)
    app.include_router(twilio_hooks.router)
    app.include_router(aliyun_hooks.router)  # POST /v1/providers/aliyun/reports (token in the URL)
    app.include_router(unsubscribe.router)
    app.include_router(operator_page.router)  # /operator: the operator web page (session cookie)
    v1_api.install(app)  # /v1 reminders, suppressions, agreements, in-doubt, opt-outs, keys; /healthz
    app.include_router(history_api.router)  # GET /v1/accounts/{account_id}/history (operator)
    metrics_api.install(app, settings)  # GET /metrics for Prometheus (no API key; see the module)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body)
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn before it calls this factory
    if not any(isinstance(f, HideUnsubscribeTokens) for f in access.filters):
        access.addFilter(HideUnsubscribeTokens())

    return app
