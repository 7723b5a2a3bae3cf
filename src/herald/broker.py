"""kombu's Redis transport, with one repair: a worker survives losing its broker connection.

Celery 5.7 closes a broken broker connection before reconnecting. By then kombu has already
detached the transport from its connection, so closing the channel (which re-queues its
unacknowledged messages) fails with ``AttributeError: 'NoneType' object has no attribute
'hostname'``. That is not a connection error, so the worker treats it as unrecoverable and
exits instead of reconnecting. Here a detached channel reports a connection error instead,
which Celery ignores while it reconnects; the messages stay in kombu's unacked set and come
back after the visibility timeout (and herald's claim makes a second run harmless).

``celery_config`` selects this transport for ``redis://`` and ``rediss://`` broker URLs.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

TRANSPORT = "herald.broker:Transport"


class Channel(kombu_redis.Channel):
    """A Redis channel that reports a detached connection as a connection error."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection was already closed")
        base: Any = super()
        params: dict[str, Any] = base._connparams(asynchronous)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


def transport_for(url: str) -> str | None:
    """The transport to use for a broker URL (None: kombu's choice, e.g. for Sentinel)."""
    return TRANSPORT if url.startswith(("redis://", "rediss://", "unix://")) else None
