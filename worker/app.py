"""The Celery app, built from herald's shared configuration, with the thin tasks registered."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from herald import heartbeat
from herald.config import get_settings
from herald.queues import make_celery

app: Celery = make_celery(main="worker")
app.conf.imports = ["worker.tasks"]

logging.getLogger("herald").setLevel(logging.INFO)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Tell ``/healthz`` this process consumes (herald:workers:<host>:<pid>, see herald.heartbeat)."""
    settings = get_settings()
    node = str(getattr(sender, "hostname", "") or "")
    heartbeat.start_process_heartbeat(settings.redis_url, settings.heartbeat_interval, node=node)


task_prerun.connect(lambda **_: heartbeat.touch(), weak=False)
task_postrun.connect(lambda **_: heartbeat.touch(), weak=False)
worker_shutdown.connect(lambda **_: heartbeat.stop_process_heartbeat(), weak=False)
