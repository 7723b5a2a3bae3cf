"""herald: multi-channel reminder dispatcher for consumer-credit lenders.

Upstream services call :func:`enqueue` or :func:`enqueue_many`; see the README.
"""

from herald.producer import EnqueueInterrupted, EnqueueResult, Producer, enqueue, enqueue_many


def cancel(reminder_id: str) -> dict[str, str]:
    """Withdraw a reminder: its pending deliveries end ``cancelled``; returns each state."""
    from herald.cancellation import cancel as _cancel
    from herald.producer import default_producer

    producer = default_producer()
    return _cancel(producer.redis, reminder_id, events_maxlen=producer.settings.events_maxlen)


def agreement_event(account_id: str, agreement: str, event: str, *, by: str = "agreements") -> str:
    """Apply an agreement event (signed, installment_paid, installment_missed, broken, completed)."""
    from herald.agreements import apply_event
    from herald.producer import default_producer
    from herald.suppression import SuppressionStore

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
