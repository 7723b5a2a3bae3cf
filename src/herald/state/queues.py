"""Queue and task names, and the Celery configuration every herald process loads.

Producers, workers, the scheduler and Flower all build their Celery app from ``celery_config``
so that they agree on one ``visibility_timeout`` (the shortest one loaded would win) and on the
at-least-once settings. No ETA, countdown or Celery retry is used anywhere: waits go to the
scheduler's sorted set.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from herald.config import Settings, get_settings
from herald.models import CHANNELS, Channel
from herald.state.broker import transport_for
from herald.state.redisconn import broker_transport_options

INTAKE = "herald.intake"
SMS = "herald.sms"
EMAIL = "herald.email"
PUSH = "herald.push"
SMS_BULK = "herald.sms.bulk"
EMAIL_BULK = "herald.email.bulk"
PUSH_BULK = "herald.push.bulk"
CHANNEL_QUEUES: dict[Channel, str] = {"sms": SMS, "email": EMAIL, "push": PUSH}
"""The priority lane of each channel: agreement and transactional deliveries."""
BULK_QUEUES: dict[Channel, str] = {"sms": SMS_BULK, "email": EMAIL_BULK, "push": PUSH_BULK}
"""The bulk lane of each channel: collection deliveries (campaigns, backlogs)."""
ALL_QUEUES: tuple[str, ...] = (INTAKE, SMS, SMS_BULK, EMAIL, EMAIL_BULK, PUSH, PUSH_BULK)
BULK_CATEGORIES = frozenset({"collection"})

TASK_INTAKE = "herald.intake"
TASK_DELIVER = "herald.deliver"

assert set(CHANNEL_QUEUES) == set(CHANNELS) == set(BULK_QUEUES)


def queue_for(channel: Channel, category: str = "") -> str:
    """The queue that carries deliveries of ``channel`` in the lane of ``category``.

    Collection deliveries travel in the channel's bulk lane, the others in its priority lane;
    a worker takes from both in turn, so a collection backlog never holds back an agreement or
    transactional reminder: when both lanes have work each gets at least half of the channel's
    batches, and so of its provider's limit, which the lanes share.
    """
    return BULK_QUEUES[channel] if category in BULK_CATEGORIES else CHANNEL_QUEUES[channel]


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings shared by every process that talks to the broker."""
    transport = {"visibility_timeout": settings.visibility_timeout, **broker_transport_options(settings)}
    return {
        "broker_url": settings.redis_url,
        "broker_transport": transport_for(settings.redis_url),
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Celery's retry-on-worker-lost re-publishes with a countdown (an ETA): never used.
        "task_retry_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "task_time_limit": settings.visibility_timeout // 4,
        "task_soft_time_limit": settings.visibility_timeout // 4 - 10,
        "task_default_queue": INTAKE,
        "task_create_missing_queues": False,
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in ALL_QUEUES],
        "task_routes": {TASK_INTAKE: {"queue": INTAKE}},
    }


def make_celery(settings: Settings | None = None, main: str = "herald") -> Celery:
    """A Celery app configured for herald, with no tasks registered (producers use it)."""
    app = Celery(main)
    app.conf.update(celery_config(settings or get_settings()))
    return app
