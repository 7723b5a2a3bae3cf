"""``/v1/optouts/{channel}`` (scope ``operator``): addresses that asked not to be contacted.

Addresses are personal data: they travel in request bodies, never in URLs (URLs reach access
logs), and listings are masked unless ``unmasked=true``. "Who" is the owner of the API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from herald.api.auth import Operator
from herald.api.common import Utf8, errors, field_error
from herald.api.deps import redis_of
from herald.display.masking import mask_address
from herald.holds.optouts import OptOuts
from herald.models import Channel

router = APIRouter(prefix="/v1/optouts", tags=["opt-outs"])

ChannelPath = Annotated[Channel, Path(description="sms, email or push.")]
Address = Annotated[str, StringConstraints(min_length=1, max_length=4096, strip_whitespace=True), Utf8]


class OptOutPage(BaseModel):
    """One page of a channel's opt-outs."""

    channel: str
    addresses: list[str] = Field(description="Masked unless unmasked=true.")
    next_cursor: int | None = Field(description="Pass as cursor for the next page; null: the last page.")


class AddressBody(BaseModel):
    """An E.164 number (sms), an email address (email) or a push token (push)."""

    model_config = {"extra": "forbid"}

    address: Address


class OptOutChange(BaseModel):
    """Whether anything changed."""

    channel: str
    address: str = Field(description="The address as stored, masked.")
    opted_out: bool = Field(description="Whether the address is opted out now.")
    changed: bool = Field(description="False when it already was so.")


@router.get(
    "/{channel}", summary="A page of a channel's opt-outs", response_model=OptOutPage, responses=errors()
)
def list_optouts(
    channel: ChannelPath,
    request: Request,
    _caller: Operator,
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1, description="From an earlier page's next_cursor.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Roughly how many per page.")] = 100,
    unmasked: Annotated[bool, Query(description="Show whole addresses (personal data).")] = False,
) -> OptOutPage:
    """Opt-outs of ``channel``, a page at a time (Redis SSCAN: pages may be uneven)."""
    next_cursor, addresses = OptOuts(redis_of(request)).list(channel, cursor=cursor, count=limit)
    shown = addresses if unmasked else [mask_address(channel, a) for a in addresses]
    return OptOutPage(channel=channel, addresses=shown, next_cursor=next_cursor or None)


def _change(channel: Channel, body: AddressBody, request: Request, by: str, *, add: bool) -> OptOutChange:
    optouts = OptOuts(redis_of(request))
    try:
        if add:
            changed = optouts.add(channel, body.address, source="operator", by=by)
        else:
            changed = optouts.remove(channel, body.address, source="operator", by=by)
    except ValueError as exc:
        raise field_error(("body", "address"), str(exc)) from None
    return OptOutChange(
        channel=channel, address=mask_address(channel, body.address), opted_out=add, changed=changed
    )


@router.post(
    "/{channel}",
    summary="Opt an address out of a channel",
    response_model=OptOutChange,
    status_code=201,
    responses={200: {"description": "It was opted out already."}, **errors(400)},
)
def add_optout(
    channel: ChannelPath, body: AddressBody, request: Request, response: Response, caller: Operator
) -> OptOutChange:
    """Nothing more is sent to the address on this channel until it is removed (201; 200 if it was)."""
    result = _change(channel, body, request, caller.owner, add=True)
    response.status_code = 201 if result.changed else 200
    return result


@router.post(
    "/{channel}/remove",
    summary="Opt an address back in to a channel",
    response_model=OptOutChange,
    responses=errors(400),
)
def remove_optout(
    channel: ChannelPath, body: AddressBody, request: Request, caller: Operator
) -> OptOutChange:
    """The address may be contacted on this channel again (``changed`` false: it was not opted out)."""
    return _change(channel, body, request, caller.owner, add=False)
