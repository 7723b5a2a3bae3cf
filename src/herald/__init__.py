"""herald: multi-channel reminder dispatcher for consumer-credit lenders.

Upstream services call :func:`enqueue` or :func:`enqueue_many`; see the README.

Importing ``herald`` (or any of its modules, ``herald.clock`` say) loads nothing heavy: the
producer and Celery load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from herald.intake.producer import (
        EnqueueInterrupted,
        EnqueueResult,
        Producer,
        enqueue,
        enqueue_many,
    )

_PRODUCER_NAMES = frozenset({"EnqueueInterrupted", "EnqueueResult", "Producer", "enqueue", "enqueue_many"})


def __getattr__(name: str) -> Any:
    """The producer's names, imported when first asked for (PEP 562)."""
    if name in _PRODUCER_NAMES:
        from herald.intake import producer

        return getattr(producer, name)
    raise AttributeError(f"module 'herald' has no attribute {name!r}")


def cancel(reminder_id: str) -> dict[str, str]:
    """Withdraw a reminder: its pending deliveries end ``cancelled``; returns each state."""
    from herald.intake.cancellation import cancel as _cancel
    from herald.intake.producer import default_producer

    producer = default_producer()
    return _cancel(producer.redis, reminder_id, events_maxlen=producer.settings.events_maxlen)


def agreement_event(account_id: str, agreement: str, event: str, *, by: str = "agreements") -> str:
    """Apply an agreement event (signed, installment_paid, installment_missed, broken, completed)."""
    from herald.holds.agreements import apply_event
    from herald.holds.suppression import SuppressionStore
    from herald.intake.producer import default_producer

    change = apply_event(SuppressionStore(default_producer().redis), account_id, agreement, event, by=by)
    return change.action


__all__ = [
    "EnqueueInterrupted",
    "EnqueueResult",
    "Producer",
    "agreement_event",
    "cancel",
    "enqueue",
    "enqueue_many",
]
