"""herald's Celery consumer: a message Celery cannot turn into a herald task is dead-lettered.

Celery's own handling of such messages on the Redis transport is uneven: an unknown task name
or a body it cannot decode is logged and acknowledged, but a task message of the wrong shape
(a body that is not ``[args, kwargs, embed]``, a missing ``id``, a task name that is not a
string) raises inside the consumer's event loop; the worker process exits and the message,
restored from kombu's unacknowledged set, stops the next one too. Here each of those cases is
recorded in the dead-letter stream (``herald.state.poison``) and rejected without requeue (on Redis
that removes it). Celery's own handlers are replaced, not called: they log the message body,
which may hold personal data; herald logs a masked sample. The signals (``task_unknown``,
``task_rejected``) and the task-failed event for an unknown task are still sent.

``worker.app`` selects this class with Celery's ``worker_consumer`` setting.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.message import Message

from herald.config import get_settings
from herald.state import poison

log = logging.getLogger("herald.worker")

MALFORMED = (ValueError, TypeError, KeyError)
"""What building a task request from a malformed message raises (never a broker error)."""


def _task_of(message: Message) -> tuple[Any, Any]:
    """The task name and id a message gives: in its headers (Celery's protocol 2) or in its
    decoded body (protocol 1); None for what it does not say."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    if "task" in headers:
        return headers.get("task"), headers.get("id")
    try:
        payload = message.payload
    except Exception:  # an undecodable body says nothing
        return None, None
    return (payload.get("task"), payload.get("id")) if isinstance(payload, dict) else (None, None)


def _dead_letter(message: Message, reason: str) -> None:
    from worker.tasks import redis_client  # the tasks module builds the process's client

    info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
    task, _ = _task_of(message)
    poison.record(
        redis_client(),
        queue=str(info.get("routing_key") or ""),
        task=task if isinstance(task, str) else "",
        reason=reason,
        body=message.body,
        maxlen=get_settings().events_maxlen,
    )


class Consumer(CeleryConsumer):
    """Celery's consumer with every unreadable message dead-lettered and rejected (on Redis,
    rejecting without requeue removes it like an acknowledgement)."""

    def _settle(self, message: Message) -> None:
        """Reject ``message`` unless a handler already settled it: the broker forgets it."""
        if not message.acknowledged:
            errors = self.connection_errors  # type: ignore[attr-defined]  # set by Celery, untyped
            message.reject_log_error(log, errors, requeue=False)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """A body that cannot be decoded (not JSON, a content type herald does not accept)."""
        _dead_letter(message, f"body cannot be decoded ({message.content_type}): {exc}")
        self._settle(message)

    def on_unknown_message(self, body: Any, message: Message) -> None:
        """A message that names no task: another application's, or no Celery message at all."""
        _dead_letter(message, "not a Celery task message (it names no task)")
        self._settle(message)
        signals.task_rejected.send(sender=self, message=message, exc=None)

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        """A task herald does not have: another application's, or a misspelt name."""
        name, task_id = _task_of(message)
        _dead_letter(message, f"unknown task {poison.sample(name, 100)}")
        self._settle(message)
        events = self.event_dispatcher  # type: ignore[attr-defined]  # set by Celery, untyped
        if events and isinstance(task_id, str):  # Flower shows it as failed
            events.send("task-failed", uuid=task_id, exception=f"NotRegistered({poison.sample(name, 100)})")
        signals.task_unknown.send(sender=self, message=message, exc=exc, name=name, id=task_id)

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        """A task message Celery refuses (a bad ETA or expiry, a content type not accepted)."""
        _dead_letter(message, f"invalid task message: {exc}")
        self._settle(message)
        signals.task_rejected.send(sender=self, message=message, exc=exc)

    def create_task_handler(self, promise: Any = None) -> Any:
        """Celery's handler of each message, with malformed task messages dead-lettered."""
        handler = super().create_task_handler() if promise is None else super().create_task_handler(promise)

        def on_task_received(message: Message) -> Any:
            try:
                return handler(message)
            except MALFORMED as exc:
                _dead_letter(message, f"malformed task message: {exc.__class__.__name__}: {exc}")
                self._settle(message)
                return None

        return on_task_received
