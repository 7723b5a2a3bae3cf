"""``/v1/in-doubt`` (scope ``operator``): deliveries the provider may have accepted.

herald never resends them by itself; an operator who checked with the provider settles each
as sent or not sent, with a reason. "Who" is the owner of the caller's API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from herald.api.auth import Operator
from herald.api.common import Reason, errors
from herald.api.deps import redis_of, settings_of
from herald.delivery.indoubt import list_in_doubt, resolve
from herald.models import MAX_ID

router = APIRouter(prefix="/v1/in-doubt", tags=["in-doubt deliveries"])

DeliveryKey = Annotated[
    str,
    Path(
        min_length=5,
        max_length=MAX_ID + 6,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*:(sms|email|push)$",
        description="The delivery key: <reminder id>:<channel>.",
    ),
]


class InDoubtDelivery(BaseModel):
    """One in-doubt delivery and why it is in doubt (times ISO-8601 UTC; null: not there, as in
    ``herald status --in-doubt --json``)."""

    key: str
    channel: str
    state: str
    outcome: str | None
    reason: str | None
    attempts: int
    accepted_at: str | None
    updated_at: str | None
    finished_at: str | None = Field(description="When it became in doubt.")


class InDoubtPage(BaseModel):
    """In-doubt deliveries, oldest first."""

    deliveries: list[InDoubtDelivery]
    offset: int
    limit: int
    next_offset: int | None


class Resolution(BaseModel):
    """What the provider says happened."""

    model_config = {"extra": "forbid"}

    sent: bool = Field(description="true: the provider had it (outcome sent); false: not sent (failed).")
    reason: Reason = Field(description="What you checked (recorded).")


class Resolved(BaseModel):
    """The delivery's outcome now."""

    key: str
    outcome: str


@router.get("", summary="In-doubt deliveries, oldest first", response_model=InDoubtPage, responses=errors())
def list_deliveries(
    request: Request,
    _caller: Operator,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> InDoubtPage:
    """Deliveries waiting for an operator's word, with the reason they are in doubt."""
    rows = list_in_doubt(redis_of(request), offset=offset, count=limit)
    return InDoubtPage(
        deliveries=[InDoubtDelivery.model_validate(r) for r in rows],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if len(rows) == limit else None,
    )


@router.post(
    "/{delivery}/resolve",
    summary="Settle an in-doubt delivery as sent or not sent",
    response_model=Resolved,
    responses=errors(400, 404, e404="The delivery is not in doubt (unknown, or already settled)."),
)
def resolve_delivery(delivery: DeliveryKey, body: Resolution, request: Request, caller: Operator) -> Resolved:
    """``sent: true`` ends it ``sent``; ``sent: false`` ends it ``failed``. Recorded with who and why."""
    settings = settings_of(request)
    settled = resolve(
        redis_of(request),
        delivery,
        sent=body.sent,
        by=caller.owner,
        reason=body.reason,
        events_maxlen=settings.events_maxlen,
    )
    if not settled:
        raise HTTPException(404, f"{delivery} is not in doubt (unknown, or already settled)")
    return Resolved(key=delivery, outcome="sent" if body.sent else "failed")
