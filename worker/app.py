"""The Celery app, built from herald's shared configuration, with the thin tasks registered."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown, worker_shutting_down

from herald.config import get_settings
from herald.ops import heartbeat, watchdog
from herald.state.queues import make_celery

app: Celery = make_celery(main="worker")
app.conf.imports = ["worker.tasks"]
# Messages Celery cannot turn into a herald task go to the dead-letter stream (herald.state.poison).
app.conf.worker_consumer = "worker.consumer:Consumer"

logging.getLogger("herald").setLevel(logging.INFO)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Tell ``/healthz`` this process consumes (herald:workers:<host>:<pid>, see herald.ops.heartbeat)."""
    settings = get_settings()
    node = str(getattr(sender, "hostname", "") or "")
    heartbeat.start_process_heartbeat(settings.redis_url, settings.heartbeat_interval, node=node)


task_prerun.connect(lambda **_: heartbeat.touch(), weak=False)
task_postrun.connect(lambda **_: heartbeat.touch(), weak=False)
worker_shutdown.connect(lambda **_: heartbeat.stop_process_heartbeat(), weak=False)


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    """Exit when this process's queues wait and it consumes nothing (see herald.ops.watchdog)."""
    queues = sorted(app.amqp.queues.consume_from)
    node = str(getattr(sender, "hostname", "") or "")
    watchdog.start_process_watchdog(get_settings(), queues, node=node)


def _task_started(task_id: str = "", **_: Any) -> None:
    watchdog.task_started(get_settings(), task_id)


def _task_finished(task_id: str = "", **_: Any) -> None:
    watchdog.task_finished(get_settings(), task_id)


task_prerun.connect(_task_started, weak=False)
task_postrun.connect(_task_finished, weak=False)
worker_shutting_down.connect(lambda **_: watchdog.stop_process_watchdog(), weak=False)
