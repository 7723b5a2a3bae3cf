"""``GET /metrics`` of ``herald api``, for Prometheus: this process's metrics and the Redis gauges.

No API key: Prometheus scrapes it. It carries no personal data (labels are channels, outcomes,
providers and queue names), but it tells how busy herald is: firewall it to the Prometheus
servers, and/or set ``HERALD_METRICS_TOKEN`` to require ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from herald.config import Settings
from herald.ops.metrics import process_registry
from herald.ops.metrics_server import token_ok

router = APIRouter(tags=["ops"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The exposition text of this process's registry (bearer token if configured)."""
    settings: Settings = request.app.state.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not token_ok(request.headers.get("authorization"), token):
        raise HTTPException(
            401, "a bearer token is required (HERALD_METRICS_TOKEN)", {"WWW-Authenticate": "Bearer"}
        )
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, settings: Settings) -> None:
    """Add ``GET /metrics`` to ``app``, with its registry."""
    app.state.metrics_registry = process_registry(settings.redis_url)
    app.include_router(router)
