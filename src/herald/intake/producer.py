"""What upstream Python services call: ``enqueue`` and ``enqueue_many``.

Each reminder is validated, stored once in Redis (its id is the idempotency key; the digest of
its body tells a duplicate from a conflict) together with its deliveries' states, and the keys
of the accepted deliveries are published to ``herald.intake`` in batches (a few at a time go
straight to their channel lanes). A bad reminder is
reported with its fields and never affects the others in the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from typing import Any, Literal

import orjson
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from herald import clock
from herald.config import Settings, get_settings
from herald.intake.validation import FieldError, ReminderInvalid, parse_reminder
from herald.models import Reminder, State, delivery_key
from herald.rendering.catalog import Catalog, cached_catalog
from herald.state import store
from herald.state.fanout import mark_queued, publish_to_lanes, published_header
from herald.state.queues import INTAKE, TASK_INTAKE, make_celery
from herald.state.redisconn import settings_client

Status = Literal["accepted", "rejected", "duplicate", "conflict"]
DIGEST_CHARS = 32
"""Hex characters of the body's SHA-256 kept on the record: 128 bits tell a duplicate from a
conflict as surely as 256, in half the bytes every record keeps for its whole retention."""


@dataclass(frozen=True)
class EnqueueResult:
    """The answer for one reminder: accepted, rejected (with errors), duplicate or conflict."""

    status: Status
    id: str | None
    errors: list[FieldError] = field(default_factory=list)
    accepted_at: str = ""
    deliveries: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the reminder is (or already was) accepted."""
        return self.status in ("accepted", "duplicate")

    @property
    def reason(self) -> str:
        """Why it was not accepted, in one line (empty when it was)."""
        if self.status == "conflict":
            return (
                f"id already used by a different reminder (accepted at {self.accepted_at}); "
                "use a new id for a new reminder"
            )
        return "; ".join(str(e) for e in self.errors)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as the command line and the API print it."""
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.accepted_at:
            out["accepted_at"] = self.accepted_at
        if self.deliveries:
            out["deliveries"] = self.deliveries
        if self.errors:
            out["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        if self.status == "conflict":
            out["reason"] = self.reason
        return out


class EnqueueInterrupted(RuntimeError):
    """Redis failed part-way through ``enqueue_many``: ``results`` are those of the reminders
    handled before (in input order, from the first), ``cause`` what Redis said."""

    def __init__(self, results: list[EnqueueResult], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.results = results
        self.cause = cause


def _raw_id(raw: object) -> str | None:
    if isinstance(raw, Reminder):
        return raw.id
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
        return str(raw["id"])[:200]
    return None


class Producer:
    """Validates, stores and publishes reminders. Thread-safe; cheap to keep for a process."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: redis.Redis | None = None,
        celery: Celery | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.redis = client or settings_client(self.settings)
        self.celery = celery or make_celery(self.settings)
        self.catalog = catalog or cached_catalog(self.settings.templates_dir)
        self._intake = self.redis.register_script(store.script_source("intake"))

    def enqueue(self, reminder: Reminder | Mapping[str, Any]) -> EnqueueResult:
        """Enqueue one reminder; see :meth:`enqueue_many`."""
        return self.enqueue_many([reminder])[0]

    def enqueue_many(
        self,
        reminders: Iterable[Reminder | Mapping[str, Any]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[EnqueueResult]:
        """Enqueue reminders in batches; one result per input, in input order.

        ``progress`` is called with the number of reminders handled after each batch. When
        Redis fails part-way (unreachable, or full), :class:`EnqueueInterrupted` carries the
        results of the batches already stored; sending the same reminders again is safe (those
        answer ``duplicate``).
        """
        chunks = _chunks(iter(reminders), self.settings.intake_batch)
        head = list(islice(chunks, 2))
        if len(head) < 2:  # one chunk (an API call, a trickle): stored in the caller's thread
            return self._enqueue_chunks(head, progress, None)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="herald-intake") as storer:
            return self._enqueue_chunks(chain(head, chunks), progress, storer)

    def _enqueue_chunks(
        self,
        chunks: Iterable[list[Reminder | Mapping[str, Any]]],
        progress: Callable[[int], None] | None,
        storer: ThreadPoolExecutor | None,
    ) -> list[EnqueueResult]:
        """Prepare each chunk while the one before is stored (by ``storer``'s one thread, when
        given); a chunk is stored only once the one before it was."""
        results: list[EnqueueResult] = []
        pending: Callable[[], list[EnqueueResult]] | None = None  # the chunk being stored
        pending_count = 0

        def collect(stored: Callable[[], list[EnqueueResult]], count: int) -> None:
            try:
                results.extend(stored())
            except EnqueueInterrupted as exc:
                raise EnqueueInterrupted([*results, *exc.results], exc.cause) from exc.cause
            except (redis.RedisError, OperationalError) as exc:
                raise EnqueueInterrupted(results, exc) from exc
            if progress is not None:
                progress(count)

        for chunk in chunks:
            prepared = self._prepare(chunk)
            if pending is not None:
                collect(pending, pending_count)
            if storer is not None:
                pending = storer.submit(self._store, prepared).result
            else:
                pending = partial(self._store, prepared)
            pending_count = len(chunk)
        if pending is not None:
            collect(pending, pending_count)
        return results

    def _prepare(self, chunk: list[Reminder | Mapping[str, Any]]) -> _Prepared:
        """Validate a chunk and build what the intake script stores (CPU only, no Redis)."""
        now = clock.now()
        prepared = _Prepared(results=[None] * len(chunk))
        for index, raw in enumerate(chunk):
            try:
                prepared.valid.append((index, parse_reminder(raw, self.catalog, now)))
            except ReminderInvalid as exc:
                prepared.results[index] = EnqueueResult("rejected", _raw_id(raw), exc.errors)
        for _, reminder in prepared.valid:
            spec, spec_keys = self._spec(reminder)
            prepared.specs.append(spec)
            prepared.keys.extend(spec_keys)
        return prepared

    def _store(self, prepared: _Prepared) -> list[EnqueueResult]:
        """Store a prepared chunk (``lua/intake.lua``) and publish what it accepted."""
        results = prepared.results
        if prepared.valid:
            s = self.settings
            keys = [*prepared.keys, store.DEADLINES]
            args: list[str | bytes | float] = [store.PREFIX, orjson.dumps(prepared.specs), clock.offset()]
            args += [s.retention_days * 86400, s.hold_seconds]
            answers = self._intake(keys=keys, args=args)
            to_publish: dict[str, str] = {}  # delivery key -> category (it decides the lane)
            for (index, reminder), (status, accepted_at) in zip(prepared.valid, answers, strict=True):
                status = status.decode()
                deliveries = [delivery_key(reminder.id, c) for c in reminder.channels]
                if status == "accepted":
                    category = self.catalog.get(reminder.kind).category
                    to_publish.update(dict.fromkeys(deliveries, category))
                results[index] = EnqueueResult(
                    status,
                    reminder.id,
                    accepted_at=store.iso(accepted_at.decode()),
                    deliveries=deliveries if status != "conflict" else [],
                )
            if to_publish:
                try:
                    self.publish(list(to_publish), to_publish)
                except (redis.RedisError, OperationalError) as exc:
                    # stored, so accepted: the reconciler publishes them once their deadline
                    # (HERALD_HOLD_SECONDS) passes
                    raise EnqueueInterrupted([r for r in results if r is not None], exc) from exc
        return [r for r in results if r is not None]

    def _spec(self, reminder: Reminder) -> tuple[dict[str, Any], list[str]]:
        """What ``lua/intake.lua`` stores for ``reminder``; the times that depend on "now"
        (accepted_at, a default expiry, the deadlines) it takes from Redis's clock."""
        kind = self.catalog.get(reminder.kind)
        body = reminder.canonical()
        not_before = reminder.not_before.timestamp() if reminder.not_before else None
        common = {
            "reminder_id": reminder.id,
            "account_id": reminder.account_id,
            "kind": reminder.kind,
            "category": kind.category,
            "not_before": f"{not_before:.3f}" if not_before is not None else "",
        }
        # the record outlives the deliveries (idempotency, status): only what they cannot say
        record = {k: v for k, v in common.items() if v and k != "reminder_id"}
        record["digest"] = hashlib.sha256(body).hexdigest()[:DIGEST_CHARS]
        record["channels"] = ",".join(reminder.channels)
        deliveries = []
        keys = [store.reminder_key(reminder.id), store.body_key(reminder.id)]
        for channel in reminder.channels:
            member = delivery_key(reminder.id, channel)
            fields = {**common, "channel": channel, "state": State.ACCEPTED.value, "attempts": "0"}
            deliveries.append({"member": member, "fields": _flat(fields)})
            keys.append(store.delivery_redis_key(member))
        spec = {
            "fields": _flat(record),
            "body": body.decode(),
            "digest": record["digest"],
            "expires_at": reminder.expires_at.timestamp() if reminder.expires_at else False,
            "expiry": kind.default_expiry.total_seconds(),
            "not_before": not_before if not_before is not None else False,
            "deliveries": deliveries,
        }
        return spec, keys

    def publish(self, deliveries: list[str], categories: dict[str, str] | None = None) -> None:
        """Publish delivery keys for the workers.

        A few (at most ``HERALD_DIRECT_PUBLISH``, with their categories known) go straight to
        their channel lanes, as the intake task would send them: a reminder enqueued alone costs
        one Celery message per channel instead of two. More go to ``herald.intake`` in intake
        batches, and its task fans them out.
        """
        s = self.settings
        if categories is not None and 0 < len(deliveries) <= s.direct_publish:
            publish_to_lanes(self.celery, deliveries, categories, s.channel_batch)
        else:
            for start in range(0, len(deliveries), s.intake_batch):
                self.celery.send_task(
                    TASK_INTAKE,
                    args=[deliveries[start : start + s.intake_batch]],
                    queue=INTAKE,
                    headers=published_header(),
                )
        mark_queued(self.redis, deliveries, s.visibility_timeout)

    def close(self) -> None:
        """Release the Redis and broker connections."""
        self.redis.close()
        self.celery.close()


@dataclass
class _Prepared:
    """A chunk validated and ready to store: a result for each rejected reminder (None for the
    others), the valid ones by input index, and the intake script's specs and keys."""

    results: list[EnqueueResult | None]
    valid: list[tuple[int, Reminder]] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk


_default: Producer | None = None


def default_producer() -> Producer:
    """The process's producer, built from the environment on first use."""
    global _default
    if _default is None:
        _default = Producer()
    return _default


def enqueue(reminder: Reminder | Mapping[str, Any]) -> EnqueueResult:
    """Validate, store and publish one reminder with the process's default producer."""
    return default_producer().enqueue(reminder)


def enqueue_many(reminders: Iterable[Reminder | Mapping[str, Any]]) -> list[EnqueueResult]:
    """Validate, store and publish many reminders in batches with the default producer."""
    return default_producer().enqueue_many(reminders)


__all__ = ["EnqueueInterrupted", "EnqueueResult", "Producer", "enqueue", "enqueue_many"]
