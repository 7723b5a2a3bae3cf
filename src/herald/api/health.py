"""``GET /healthz`` (no key): Redis reachable and workers consuming, for load balancers and people."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from herald.api.deps import redis_of, settings_of
from herald.ops.health import check_health

router = APIRouter(tags=["ops"])


class WatchdogExitBody(BaseModel):
    """A worker process that had work waiting, took none, and was made to exit."""

    worker: str = Field(description="host:pid of the process.")
    node: str = Field(description="Its Celery node name.")
    queues: str = Field(description="The queues it consumed (comma-separated).")
    queued: int = Field(description="Messages waiting in them when it exited.")
    idle_seconds: float = Field(description="How long they had waited with none taken.")
    at: str = Field(description="When it exited (ISO 8601, UTC).")


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
    watchdog_exits_last_hour: int = Field(
        default=0,
        description="Worker processes that stopped consuming and were made to exit by their watchdog "
        "(HERALD_WATCHDOG_STALL) in the last hour.",
    )
    last_watchdog_exit: WatchdogExitBody | None = Field(
        default=None, description="The latest of those exits, if any."
    )


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
    the workers stopped consuming, and so does one process whose own queues wait that long while
    the others consume. Processes that stalled and were made to exit by their watchdog in the last
    hour are counted in `watchdog_exits_last_hour`.
    """
    settings = settings_of(request)
    health = await run_in_threadpool(check_health, redis_of(request), stall=settings.health_stall)
    return JSONResponse(health.as_dict(), status_code=200 if health.ok else 503)
