"""herald: multi-channel reminder dispatcher for consumer-credit lenders.

Upstream services call :func:`enqueue` or :func:`enqueue_many`; see the README.
"""

from herald.producer import EnqueueResult, Producer, enqueue, enqueue_many

__all__ = ["EnqueueResult", "Producer", "enqueue", "enqueue_many"]
