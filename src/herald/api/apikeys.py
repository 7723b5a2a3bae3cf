"""``/v1/keys`` (scope ``admin``): API keys over HTTP — list, create, revoke.

A new key is in the answer to its creation and nowhere else: Redis keeps only its hash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from herald.access.apikeys import ApiKey, KeyRequestError, KeyStore, Scope
from herald.api.auth import Admin
from herald.api.common import Name, errors, field_error
from herald.api.deps import redis_of

router = APIRouter(prefix="/v1/keys", tags=["API keys"])

KeyId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$", description="The key's id.")]


class KeyOut(BaseModel):
    """What herald knows about a key (never the key itself)."""

    key_id: str
    owner: str = Field(description='Recorded as "who" for every change made with the key.')
    scopes: list[str]
    created_at: str
    created_by: str
    revoked_at: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        """The API's form of a key record."""
        return cls.model_validate(key.public())


class KeyList(BaseModel):
    """Every key, newest first, revoked ones included."""

    keys: list[KeyOut]


class KeyRequest(BaseModel):
    """A key to make."""

    model_config = {"extra": "forbid"}

    owner: Name = Field(description='Who uses the key: recorded as "who" on every change made with it.')
    scopes: list[Scope] = Field(min_length=1, max_length=3, description="producer, operator and/or admin.")


class NewKey(KeyOut):
    """A new key: ``key`` is shown this once and cannot be recovered."""

    key: str = Field(description="The key itself: send it as `Authorization: Bearer <key>`. Shown once.")
    warning: str = "This key is shown only once: store it now. herald keeps only its hash."


@router.get(
    "", summary="Every API key (without the keys themselves)", response_model=KeyList, responses=errors()
)
def list_keys(request: Request, _caller: Admin) -> KeyList:
    """Every key, newest first, with its owner, scopes and whether it is revoked."""
    return KeyList(keys=[KeyOut.of(k) for k in KeyStore(redis_of(request)).list()])


@router.post("", summary="Make an API key", response_model=NewKey, status_code=201, responses=errors(400))
def create_key(body: KeyRequest, request: Request, caller: Admin) -> NewKey:
    """Make a key for ``owner`` with ``scopes``. The answer holds the key: it is shown only once."""
    try:
        raw, record = KeyStore(redis_of(request)).create(body.owner, body.scopes, by=caller.owner)
    except KeyRequestError as exc:
        field = str(exc).partition(":")[0]
        raise field_error(("body", field if field in ("owner", "scope") else "owner"), str(exc)) from None
    return NewKey(key=raw, **KeyOut.of(record).model_dump())


@router.delete(
    "/{key_id}",
    summary="Revoke an API key",
    response_model=KeyOut,
    responses=errors(404, e404="No key with this id."),
)
def revoke_key(key_id: KeyId, request: Request, _caller: Admin) -> KeyOut:
    """Revoke the key: it is refused from the next request on. Revoking twice changes nothing."""
    store = KeyStore(redis_of(request))
    if store.get(key_id) is None:
        raise HTTPException(404, f"no key {key_id!r}")
    return KeyOut.of(store.revoke(key_id))
