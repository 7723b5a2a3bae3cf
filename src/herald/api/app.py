"""The FastAPI application: ``create_app()`` (uvicorn's factory) and ``herald api``."""

from __future__ import annotations

import redis
from fastapi import FastAPI

from herald import store
from herald.api import twilio_hooks, unsubscribe
from herald.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP app on ``settings`` (the environment's by default)."""
    settings = settings or get_settings()
    app = FastAPI(title="herald", version="0.1.0", description="Reminder dispatcher HTTP API.")
    app.state.settings = settings
    app.state.redis = redis.Redis.from_url(settings.redis_url)
    app.state.receipt_script = app.state.redis.register_script(store.script_source("receipt"))
    app.include_router(twilio_hooks.router)
    app.include_router(unsubscribe.router)

    @app.get("/healthz", tags=["ops"], summary="Is Redis reachable")
    def healthz() -> dict[str, str]:
        app.state.redis.ping()
        return {"status": "ok"}

    return app
