"""The deployable Celery app of herald: ``celery -A worker worker`` or ``herald worker``."""

from worker.app import app

__all__ = ["app"]
