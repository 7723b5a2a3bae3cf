"""Who is calling: API keys with scopes, as FastAPI dependencies.

A request names its key in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No valid
key answers 401; a valid key without the route's scope answers 403. Routes take the caller
as a :class:`Principal` and record its owner as "who" on every change they make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from herald.access.apikeys import KeyStore, Scope
from herald.api.deps import redis_of

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer hk_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as a header.")


@dataclass(frozen=True)
class Principal:
    """The caller: its key id, owner (recorded as "who") and scopes."""

    key_id: str
    owner: str
    scopes: frozenset[str]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that admits callers whose key holds ``scope``."""

    def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header: Annotated[str | None, Security(_header)],
    ) -> Principal:
        raw = bearer.credentials if bearer is not None else header
        if not raw:
            raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
        key = KeyStore(redis_of(request)).verify(raw)
        if key is None:
            raise _unauthorized("this API key is not valid (unknown, malformed or revoked)")
        if scope not in key.scopes:
            held = ", ".join(sorted(key.scopes))
            raise HTTPException(403, f"this key has no {scope!r} scope (it has {held})")
        return Principal(key.key_id, key.owner, key.scopes)

    check.__name__ = f"require_{scope}"
    return check


Producer = Annotated[Principal, Depends(require("producer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
