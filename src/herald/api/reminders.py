"""``/v1/reminders`` (scope ``producer``): enqueue, read and cancel reminders.

The same rules as ``herald.intake.producer`` from Python and ``herald enqueue`` from the command line:
a reminder's ``id`` is its idempotency key; the same id with the same body is a ``duplicate``,
with another body a ``conflict``; a bad reminder is ``rejected`` with its fields and never
affects the others of a batch.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, GetPydanticSchema, TypeAdapter
from pydantic_core import core_schema

from herald.api.auth import Producer as ProducerKey
from herald.api.common import ErrorBody, errors
from herald.api.deps import redis_of, settings_of
from herald.intake.cancellation import UnknownReminder, cancel
from herald.intake.producer import EnqueueResult, Producer
from herald.models import ID_PATTERN, MAX_ID, Reminder
from herald.rendering.catalog import CatalogError
from herald.state.status import StatusError, read_status

router = APIRouter(prefix="/v1/reminders", tags=["reminders"])

_lock = threading.Lock()

_DOCUMENTED = TypeAdapter(Reminder | list[Reminder]).core_schema
ReminderPayload = Annotated[
    Any,
    GetPydanticSchema(
        # Items are validated one by one by the producer (a bad one must not sink the batch);
        # the documentation shows the wire format.
        get_pydantic_core_schema=lambda _type, _handler: core_schema.any_schema(),
        get_pydantic_json_schema=lambda _schema, handler: handler(_DOCUMENTED),
    ),
]
ReminderId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, description="The reminder's id."),
]


class FieldProblem(BaseModel):
    """One bad field of a reminder: a dotted path (``to.phone``, ``channels[1]``) and why."""

    field: str
    message: str


class ReminderResult(BaseModel):
    """What became of one reminder."""

    id: str | None = Field(description="The reminder's id, when it had one.")
    status: Literal["accepted", "rejected", "duplicate", "conflict"] = Field(
        description="accepted: stored and published; duplicate: already accepted with this very "
        "body (nothing new happens); rejected: invalid, see errors; conflict: the id is taken "
        "by a different reminder."
    )
    accepted_at: str | None = Field(None, description="When the id was first accepted (ISO-8601 UTC).")
    deliveries: list[str] = Field(default_factory=list, description="Delivery keys, <id>:<channel>.")
    errors: list[FieldProblem] = Field(default_factory=list, description="Why it was rejected.")
    reason: str | None = Field(None, description="Why it conflicts.")

    @classmethod
    def of(cls, result: EnqueueResult) -> ReminderResult:
        """The API's form of a producer result (a rejected input's text escaped to valid UTF-8)."""
        return cls.model_validate(_escaped(result.as_dict()))


def _escaped(value: Any) -> Any:
    """``value`` with every lone surrogate written as ``\\udxxx`` (a rejected id may hold one)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


class BatchResult(BaseModel):
    """One result per reminder of the array, in the same order, and the counts."""

    accepted: int
    duplicate: int
    rejected: int
    conflict: int
    results: list[ReminderResult]


class DeliveryStatus(BaseModel):
    """One channel of a reminder: its state, and its outcome with the reason once it has one.

    As ``herald status --json`` prints it (both come from ``herald.state.status.read_status``): times
    are ISO-8601 UTC, null until reached.
    """

    key: str
    channel: str
    state: str = Field(description="accepted, scheduled, retrying, sending, or the outcome.")
    outcome: str | None = Field(
        description="sent, suppressed, cancelled, duplicate, expired, opted_out, capped, failed, dead, "
        "invalid or in_doubt; null while pending."
    )
    reason: str | None
    attempts: int
    accepted_at: str | None
    updated_at: str | None
    finished_at: str | None
    not_before: str | None
    expires_at: str | None
    provider: str | None = Field(
        None,
        description="The provider called last: the one that sent it once sent (routes and failover may "
        "choose among several); null before any call.",
    )


class ReminderStatus(BaseModel):
    """A reminder and each of its deliveries."""

    id: str
    account_id: str
    kind: str
    category: str
    accepted_at: str | None
    expires_at: str | None
    not_before: str | None
    cancelled_at: str | None
    deliveries: list[DeliveryStatus]


class CancelledDelivery(BaseModel):
    """One delivery after the cancellation."""

    key: str
    state: str
    cancelled: bool = Field(description="False when it had already been sent or otherwise ended.")


class CancelResult(BaseModel):
    """What the cancellation did."""

    id: str
    cancelled: list[str] = Field(description="Deliveries that are now cancelled.")
    not_cancelled: list[str] = Field(description="Deliveries that had already ended (or are sending).")
    deliveries: list[CancelledDelivery]


def producer_of(request: Request) -> Producer:
    """The app's producer, built on first use (it loads the template catalog)."""
    app = request.app
    with _lock:
        producer: Producer | None = getattr(app.state, "producer", None)
        if producer is None:
            try:
                producer = Producer(settings_of(request), client=redis_of(request))
            except CatalogError as exc:
                raise HTTPException(503, f"the templates cannot be loaded: {exc}") from None
            app.state.producer = producer
        return producer


_SINGLE_CODES = {"accepted": 201, "duplicate": 200, "rejected": 422, "conflict": 409}


@router.post(
    "",
    summary="Enqueue one reminder, or an array of them",
    response_model=ReminderResult | BatchResult,
    status_code=201,
    responses={
        200: {
            "description": "An array: one result per item, in order (whatever each status). "
            "One reminder: a duplicate (already accepted with this body).",
            "model": ReminderResult | BatchResult,
        },
        201: {"description": "One reminder, accepted.", "model": ReminderResult},
        409: {"description": "One reminder whose id is taken by a different body.", "model": ReminderResult},
        413: {"description": "More reminders than HERALD_API_MAX_BATCH.", "model": ErrorBody},
        422: {
            "description": "One reminder, rejected: `errors` names each bad field. Or a body that "
            "is neither a JSON object nor an array (FastAPI's validation error).",
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/ReminderResult"},
                            {"$ref": "#/components/schemas/HTTPValidationError"},
                        ]
                    }
                }
            },
        },
        **{k: v for k, v in errors(400).items() if k in (400, 401, 403, 503)},
    },
)
async def enqueue(
    request: Request,
    response: Response,
    _caller: ProducerKey,
    payload: Annotated[
        ReminderPayload,
        Body(
            description="A reminder (DESIGN.md's wire format) or a JSON array of them, at most "
            "HERALD_API_MAX_BATCH (default 1000) per request."
        ),
    ],
) -> ReminderResult | BatchResult:
    """Validate, store and publish reminders; the same semantics as ``herald.enqueue_many``.

    One reminder: 201 accepted, 200 duplicate, 422 rejected (with field errors), 409 conflict.
    An array: 200 with one result per item, in order; bad items never affect the others.
    """
    producer = await run_in_threadpool(producer_of, request)
    if isinstance(payload, list):
        limit = settings_of(request).api_max_batch
        if len(payload) > limit:
            raise HTTPException(
                413,
                f"body: an array of {len(payload)} reminders; at most {limit} per request "
                "(HERALD_API_MAX_BATCH): split it",
            )
        answers = await run_in_threadpool(producer.enqueue_many, payload)
        results = [ReminderResult.of(a) for a in answers]
        response.status_code = 200
        counts = {s: sum(r.status == s for r in results) for s in _SINGLE_CODES}
        return BatchResult(results=results, **counts)
    answer = await run_in_threadpool(producer.enqueue, payload)
    response.status_code = _SINGLE_CODES[answer.status]
    return ReminderResult.of(answer)


@router.get(
    "/{id}",
    summary="A reminder's deliveries: each channel's state and outcome with its reason",
    response_model=ReminderStatus,
    responses=errors(404, e404="No reminder with this id (never accepted, or past its retention)."),
)
def get_reminder(id: ReminderId, request: Request, _caller: ProducerKey) -> dict[str, Any]:
    """Each channel's state and, once it has one, its outcome and the reason."""
    try:
        return read_status(redis_of(request), id)
    except StatusError as exc:
        raise HTTPException(404, str(exc)) from None


@router.delete(
    "/{id}",
    summary="Cancel a reminder (upstream withdraws it)",
    response_model=CancelResult,
    responses=errors(404, e404="No reminder with this id (never accepted, or past its retention)."),
)
def cancel_reminder(id: ReminderId, request: Request, _caller: ProducerKey) -> CancelResult:
    """Withdraw a reminder: its pending deliveries end ``cancelled`` now.

    A delivery already sent (or being sent) cannot be called back; it is listed under
    ``not_cancelled`` with its state. Cancelling twice changes nothing.
    """
    try:
        states = cancel(redis_of(request), id, events_maxlen=settings_of(request).events_maxlen)
    except UnknownReminder as exc:
        raise HTTPException(404, str(exc)) from None
    rows = [CancelledDelivery(key=k, state=s, cancelled=s == "cancelled") for k, s in states.items()]
    return CancelResult(
        id=id,
        cancelled=[r.key for r in rows if r.cancelled],
        not_cancelled=[r.key for r in rows if not r.cancelled],
        deliveries=rows,
    )
