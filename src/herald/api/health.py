"""``GET /healthz`` (no key): Redis reachable and workers consuming, for load balancers and people."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from herald.api.deps import redis_of, settings_of
from herald.heartbeat import check_health

router = APIRouter(tags=["ops"])


class HealthBody(BaseModel):
    """The system's health and, when unhealthy, what is wrong."""

    status: str = Field(description="ok or unhealthy.")
    redis: str = Field(description="ok, or why it is unreachable.")
    workers: int = Field(description="Worker processes with a live heartbeat.")
    queued: int = Field(description="Messages waiting in herald's queues.")
    last_consumed_seconds_ago: float | None = Field(
        description="Since a worker last took or finished a task (or started)."
    )
    problems: list[str]


@router.get(
    "/healthz",
    summary="Is Redis reachable and are workers consuming",
    response_model=HealthBody,
    responses={503: {"model": HealthBody, "description": "Unhealthy: `problems` says what is wrong."}},
)
async def healthz(request: Request) -> JSONResponse:
    """200 when Redis answers, a worker is alive and, if messages wait, one consumed recently.

    503 otherwise, with each problem. Worker processes refresh their heartbeat every
    HERALD_HEARTBEAT_INTERVAL seconds; a backlog untouched for HERALD_HEALTH_STALL seconds means
    the workers stopped consuming.
    """
    settings = settings_of(request)
    health = await run_in_threadpool(check_health, redis_of(request), stall=settings.health_stall)
    return JSONResponse(health.as_dict(), status_code=200 if health.ok else 503)
