"""What every ``/v1`` router shares: the error body, documented error responses, bounded text.

Every error answers ``{"detail": "..."}`` (FastAPI's shape), except bad input, which answers
FastAPI's 422 with one entry per field (``loc`` names it). Redis being unreachable is not the
caller's fault: it answers 503 with ``Retry-After``, never 500.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import kombu.exceptions
import redis
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, StringConstraints

from herald.intake.producer import EnqueueInterrupted
from herald.state.redisconn import is_full

log = logging.getLogger("herald.api")


class ErrorBody(BaseModel):
    """An error: what went wrong, in one sentence."""

    detail: str


_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read (it is not UTF-8 text).",
    401: "No API key, or one that is unknown, malformed or revoked.",
    403: "The API key does not hold this route's scope.",
    404: "Nothing by that name.",
    409: "Conflicts with what is already stored.",
    413: "Too many items in one request.",
    503: "Redis is not reachable; try again shortly.",
}


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: 401, 403 and 503 always, plus ``codes``.

    ``described`` overrides a description, keyed ``e404="..."``.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({401, 403, 503, *codes}):
        text = described.get(f"e{code}", _DESCRIPTIONS.get(code, "Error."))
        out[code] = {"model": ErrorBody, "description": text}
    return out


def _no_lone_surrogates(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it has a lone surrogate)") from None
    return value


Utf8 = AfterValidator(_no_lone_surrogates)
"""Refuses text Redis cannot store: JSON may carry a lone surrogate (``"\\ud800"``)."""
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), Utf8]
"""A non-empty short name: an account, an agreement, a hold id."""
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000, strip_whitespace=True), Utf8]
"""Why: recorded in the audit trail, shown in outcomes."""


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, EnqueueInterrupted):  # part of an array may be stored: a retry is safe
        exc = exc.cause if isinstance(exc.cause, Exception) else exc
    full = is_full(exc)
    log.warning(
        "%s %s: Redis error: %s%s",
        request.method,
        request.url.path,
        type(exc).__name__,
        " (full)" if full else "",
    )
    detail = (
        "Redis is full: it refuses writes (maxmemory reached); try again once ops have freed memory "
        "(reminders already accepted answer duplicate)"
        if full
        else "Redis is not reachable; try again shortly"
    )
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})


async def _invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, also for input that cannot be echoed as UTF-8 (a lone surrogate)."""
    assert isinstance(exc, RequestValidationError)
    body = {"detail": jsonable_encoder(exc.errors())}
    try:
        return JSONResponse(body, status_code=422)
    except UnicodeEncodeError:  # the echoed input holds a lone surrogate: escape it
        return Response(json.dumps(body), status_code=422, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    """503 (not 500) when Redis (as store or as broker) cannot be reached; 422s that always encode."""
    app.add_exception_handler(redis.RedisError, _redis_down)
    app.add_exception_handler(kombu.exceptions.OperationalError, _redis_down)
    app.add_exception_handler(EnqueueInterrupted, _redis_down)
    app.add_exception_handler(RequestValidationError, _invalid)


def field_error(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 in FastAPI's shape for one field the models could not check (raise it)."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])
