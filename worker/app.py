"""The Celery app, built from herald's shared configuration, with the thin tasks registered."""

from __future__ import annotations

import logging

from celery import Celery

from herald.queues import make_celery

app: Celery = make_celery(main="worker")
app.conf.imports = ["worker.tasks"]

logging.getLogger("herald").setLevel(logging.INFO)
