"""The key-protected ``/v1`` API and ``/healthz``, mounted on the app in one call.

| area | module | scope |
| --- | --- | --- |
| ``/v1/reminders`` | ``reminders`` | producer |
| ``/v1/suppressions`` | ``suppressions`` | operator |
| ``/v1/agreements/events`` | ``agreements`` | operator |
| ``/v1/in-doubt`` | ``indoubt`` | operator |
| ``/v1/optouts`` | ``optouts`` | operator |
| ``/v1/keys`` | ``apikeys`` | admin |
| ``/healthz`` | ``health`` | none |
"""

from __future__ import annotations

from fastapi import FastAPI

from herald.api import agreements, apikeys, health, indoubt, optouts, reminders, suppressions
from herald.api.common import install_error_handlers

ROUTERS = (
    reminders.router,
    suppressions.router,
    agreements.router,
    indoubt.router,
    optouts.router,
    apikeys.router,
    health.router,
)


def install(app: FastAPI) -> None:
    """Mount every router of this API on ``app``, with its error handlers."""
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
