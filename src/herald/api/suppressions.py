"""``/v1/suppressions`` (scope ``operator``): an account's holds — read, add, lift — and a paged list.

"Who" in the audit trail (``herald:holds:audit``) is always the owner of the caller's API key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from herald import clock
from herald.api.auth import Operator
from herald.api.common import Name, Reason, errors, field_error
from herald.api.deps import redis_of, settings_of
from herald.holds.holdcsv import HoldInputError, build_hold
from herald.holds.suppression import Change, Hold, SuppressionStore
from herald.models import ID_PATTERN, MAX_ID, Category
from herald.state import store

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])

AccountId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, description="The account's id.")
]


class HoldOut(BaseModel):
    """One hold on one account."""

    id: str = Field(description="agreement:<agreement> or operator:<hex>.")
    account_id: str
    source: Literal["agreement", "operator"]
    reason: str
    categories: list[str]
    agreement: str | None
    until: str | None = Field(description="When it lapses by itself (ISO-8601 UTC); null: never.")
    by: str = Field(description="Who added it.")
    created_at: str
    active: bool = Field(description="False once `until` has passed.")

    @classmethod
    def of(cls, hold: Hold, now: float) -> HoldOut:
        """The API's form of a stored hold."""
        return cls(
            id=hold.id,
            account_id=hold.account_id,
            source=hold.source,
            reason=hold.reason,
            categories=list(hold.categories),
            agreement=hold.agreement,
            until=store.iso(hold.until) or None,
            by=hold.by,
            created_at=store.iso(round(hold.created_at, 3)),  # as stored: to the millisecond
            active=hold.active(now),
        )


class AccountHolds(BaseModel):
    """An account's holds, oldest first (lapsed ones included)."""

    account_id: str
    holds: list[HoldOut]


class HoldPage(BaseModel):
    """A page of held accounts, in account order."""

    accounts: list[AccountHolds]
    offset: int
    limit: int
    next_offset: int | None = Field(description="Ask for this offset for the next page; null: none.")


def _collection() -> list[Category]:
    return ["collection"]


class HoldRequest(BaseModel):
    """A hold to add: "do not send these categories to this account (until T), because R"."""

    model_config = {"extra": "forbid"}

    reason: Reason
    until: Annotated[str, Field(max_length=64)] | None = Field(
        None,
        description="A date (the end of that day in HERALD_DEFAULT_TIMEZONE) or a time with an "
        "offset, e.g. 2026-12-31T18:00:00+08:00. Omitted: until lifted.",
    )
    categories: list[Category] = Field(
        default_factory=_collection, min_length=1, max_length=3, description="Blocked categories."
    )
    agreement: Name | None = Field(
        None, description="The repayment agreement this hold belongs to (its hold id is agreement:<it>)."
    )


class HoldChange(BaseModel):
    """What adding a hold did."""

    action: Literal["added", "replaced", "unchanged"]
    hold: HoldOut


class LiftResult(BaseModel):
    """The holds lifted."""

    account_id: str
    lifted: list[HoldOut]


def change_holds(change: Change) -> list[HoldOut]:
    """The holds a change added or lifted, in the API's form."""
    now = clock.time()
    touched = [change.after] if change.after is not None else change.lifted
    return [HoldOut.of(h, now) for h in touched if h is not None]


@router.get(
    "",
    summary="Held accounts, a page at a time, with their holds",
    response_model=HoldPage,
    responses=errors(),
)
def list_holds(
    request: Request,
    _caller: Operator,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many accounts.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Accounts per page.")] = 50,
    prefix: Annotated[
        str, Query(max_length=MAX_ID, pattern=r"^[A-Za-z0-9._:@-]*$", description="Accounts starting so.")
    ] = "",
) -> HoldPage:
    """Accounts with holds in account order; ``next_offset`` pages on."""
    holds = SuppressionStore(redis_of(request))
    accounts = holds.accounts(offset=offset, count=limit, prefix=prefix)
    now = clock.time()
    rows = [
        AccountHolds(account_id=a, holds=[HoldOut.of(h, now) for h in held])
        for a, held in holds.holds_of(accounts).items()
    ]
    return HoldPage(
        accounts=rows,
        offset=offset,
        limit=limit,
        next_offset=offset + limit if len(accounts) == limit else None,
    )


@router.get(
    "/{account_id}",
    summary="An account's holds",
    response_model=AccountHolds,
    responses=errors(),
)
def get_holds(account_id: AccountId, request: Request, _caller: Operator) -> AccountHolds:
    """Every hold of the account, oldest first; an account without holds has an empty list."""
    now = clock.time()
    held = SuppressionStore(redis_of(request)).holds(account_id)
    return AccountHolds(account_id=account_id, holds=[HoldOut.of(h, now) for h in held])


@router.put(
    "/{account_id}",
    summary="Hold an account from contact",
    response_model=HoldChange,
    status_code=201,
    responses={
        200: {"description": "The same hold was there already (replaced or unchanged)."},
        **errors(400),
    },
)
def put_hold(
    account_id: AccountId, body: HoldRequest, request: Request, response: Response, caller: Operator
) -> HoldChange:
    """Add a hold; "who" is the API key's owner. The same request again changes nothing.

    An agreement's hold is addressed by its agreement (asking again replaces it); an operator
    hold's id comes from what it says (reason, until, categories). 201 when added, 200 when it
    was there already.
    """
    try:
        hold = build_hold(
            account_id,
            body.reason,
            body.until,
            body.agreement,
            tuple(dict.fromkeys(body.categories)),
            caller.owner,
            timezone=settings_of(request).default_timezone,
            stable_id=True,
        )
    except HoldInputError as exc:
        loc = ("path", "account_id") if exc.field == "account_id" else ("body", exc.field)
        raise field_error(loc, exc.message) from None
    change = SuppressionStore(redis_of(request)).add(hold)
    response.status_code = 201 if change.action == "added" else 200
    stored = change.after or hold
    return HoldChange(action=change.action, hold=HoldOut.of(stored, clock.time()))


@router.delete(
    "/{account_id}",
    summary="Lift an account's holds: all, one agreement's, or one hold",
    response_model=LiftResult,
    responses=errors(404, e404="The account has no matching hold."),
)
def lift_holds(
    account_id: AccountId,
    request: Request,
    caller: Operator,
    reason: Annotated[Reason, Query(description="Why (recorded in the audit trail).")],
    agreement: Annotated[Name | None, Query(description="Lift only this agreement's hold.")] = None,
    hold: Annotated[Name | None, Query(description="Lift only this hold id.")] = None,
) -> LiftResult:
    """Lift holds; the others stay. "Who" is the API key's owner.

    Reminders decided before a lifted collection hold stay unsent (``superseded``).
    """
    if agreement is not None and hold is not None:
        raise field_error(("query", "hold"), "give agreement or hold, not both")
    change = SuppressionStore(redis_of(request)).remove(
        account_id, by=caller.owner, reason=reason, agreement=agreement, hold=hold
    )
    if not change.lifted:
        what = f"agreement {agreement}'s hold" if agreement else f"hold {hold}" if hold else "hold"
        raise HTTPException(404, f"account {account_id} has no {what}")
    return LiftResult(account_id=account_id, lifted=change_holds(change))
