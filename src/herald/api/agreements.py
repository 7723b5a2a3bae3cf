"""``POST /v1/agreements/events`` (scope ``operator``): what agreement management tells herald.

| event | effect |
| --- | --- |
| ``signed`` | hold collection contact, source = the agreement |
| ``installment_paid``, ``installment_missed`` | nothing |
| ``broken``, ``completed`` | lift that agreement's hold |

"Who" in the audit trail is the owner of the caller's API key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from herald.api.auth import Operator
from herald.api.common import errors, field_error
from herald.api.deps import redis_of, settings_of
from herald.api.suppressions import HoldOut, change_holds
from herald.holds.agreements import Event, apply_event
from herald.holds.suppression import SuppressionStore, parse_until
from herald.models import ID_PATTERN, MAX_ID

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

Ident = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]


class AgreementEvent(BaseModel):
    """One event in the life of a repayment agreement."""

    model_config = {"extra": "forbid"}

    account_id: Ident
    agreement: Ident = Field(description="The agreement's reference.")
    event: Event
    until: Annotated[str, Field(max_length=64)] | None = Field(
        None,
        description="signed only: when the hold lapses by itself (a date, or a time with an offset). "
        "Omitted: until the agreement is broken or completed.",
    )


class EventResult(BaseModel):
    """What the event changed."""

    account_id: str
    agreement: str
    event: str
    action: Literal["added", "replaced", "unchanged", "lifted", "nothing to lift", "no change"]
    holds: list[HoldOut] = Field(description="The hold added, or the holds lifted.")


@router.post(
    "/events",
    summary="Apply an agreement event to the account's holds",
    response_model=EventResult,
    responses=errors(400),
)
def post_event(body: AgreementEvent, request: Request, caller: Operator) -> EventResult:
    """``signed`` holds collection contact; ``broken`` / ``completed`` lift that agreement's hold.

    Applying the same event twice changes nothing the second time. Reminders decided before
    the agreement stay unsent after a lift (``superseded``).
    """
    try:
        until = parse_until(body.until, settings_of(request).default_timezone)
    except ValueError as exc:
        raise field_error(("body", "until"), str(exc)) from None
    if until is not None and body.event != "signed":
        raise field_error(("body", "until"), f"only a signed event has an until (this is {body.event})")
    change = apply_event(
        SuppressionStore(redis_of(request)),
        body.account_id,
        body.agreement,
        body.event,
        by=caller.owner,
        until=until,
    )
    return EventResult(
        account_id=body.account_id,
        agreement=body.agreement,
        event=body.event,
        action=change.action,
        holds=change_holds(change),
    )
