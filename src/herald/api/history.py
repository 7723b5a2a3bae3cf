"""``GET /v1/accounts/{account_id}/history`` (scope ``operator``): what happened to an account.

Every delivery outcome (and provider receipt) and every hold change, newest first, from the
durable ledger and the part of the Redis streams the ledger has not copied yet. Pages: pass
the previous page's ``next_before`` as ``before``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from herald.api.auth import Operator
from herald.api.common import errors
from herald.api.deps import redis_of, settings_of
from herald.ledger.db import LedgerUnavailable, describe_error
from herald.ledger.history import MAX_LIMIT, HistoryEntry, account_history, next_before, parse_cursor
from herald.models import MAX_ID

router = APIRouter(prefix="/v1/accounts", tags=["history"])
log = logging.getLogger("herald.api")

EVENT_ID = r"^[ea]:\d{1,20}-\d{1,20}$"


class HistoryItem(BaseModel):
    """One thing that happened to the account."""

    event_id: str = Field(
        description="Names the stream entry: `e:<id>` a delivery event, `a:<id>` a hold change.",
        examples=["e:1767225600000-0"],
    )
    at: str = Field(description="When, ISO-8601 UTC.")
    type: Literal["delivery", "hold"]
    account_id: str
    outcome: str = Field(
        description="delivery: the outcome (sent, suppressed, ...) or a receipt (delivered, "
        "undelivered); hold: the change (add, replace, lift)."
    )
    reason: str
    reminder_id: str | None = None
    channel: str | None = None
    kind: str | None = None
    category: str | None = None
    by: str | None = Field(default=None, description="Who changed the hold.")
    hold_id: str | None = None

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryItem:
        """The item of one history entry."""
        return cls(**entry.to_dict())


class HistoryPage(BaseModel):
    """A page of an account's history, newest first."""

    account_id: str
    entries: list[HistoryItem]
    limit: int
    next_before: str | None = Field(
        description="Pass as `before` for the next (older) page; null when this page is the last."
    )


@router.get(
    "/{account_id}/history",
    response_model=HistoryPage,
    summary="An account's delivery outcomes and hold changes",
    responses=errors(e503="Redis or the ledger database is not reachable; try again shortly."),
)
def history(
    request: Request,
    _caller: Operator,
    account_id: Annotated[str, Path(min_length=1, max_length=MAX_ID, description="The account.")],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many entries.")] = 100,
    before: Annotated[
        str | None,
        Query(pattern=EVENT_ID, description="Only entries older than this event id (a `next_before`)."),
    ] = None,
) -> HistoryPage:
    """Newest first, from the ledger and the streams' tail; each entry once."""
    settings = settings_of(request)
    if before is not None:
        try:
            parse_cursor(before)
        except ValueError as exc:  # of the right shape, past what any stream id can hold
            problem = {"type": "value_error", "loc": ("query", "before"), "msg": str(exc), "input": before}
            raise RequestValidationError([problem]) from None
    try:
        entries = account_history(settings, redis_of(request), account_id, limit=limit, before=before)
    except (LedgerUnavailable, SQLAlchemyError) as exc:
        log.warning("history of an account: ledger error: %s", describe_error(exc))
        raise HTTPException(
            503, "the ledger database is not reachable; try again shortly", headers={"Retry-After": "5"}
        ) from None
    return HistoryPage(
        account_id=account_id,
        entries=[HistoryItem.of(e) for e in entries],
        limit=limit,
        next_before=next_before(entries, limit),
    )
