"""kombu's Redis transport, with one repair: a worker survives losing its broker connection.

Celery 5.7 closes a broken broker connection before reconnecting. By then kombu has already
detached the transport from its connection, so closing the channel (which re-queues its
unacknowledged messages) fails with ``AttributeError: 'NoneType' object has no attribute
'hostname'``. That is not a connection error, so the worker treats it as unrecoverable and
exits instead of reconnecting. Here a detached channel reports a connection error instead,
which Celery ignores while it reconnects; the messages stay in kombu's unacked set and come
back after the visibility timeout (and herald's claim makes a second run harmless).

Both channels also screen what they take from a queue (``herald.state.poison.ScreenedReads``): an
item that is no kombu message (not JSON, another shape) is dead-lettered and skipped, where
kombu would raise inside the worker's event loop and stop the process.

``celery_config`` selects this transport for ``redis://`` and ``rediss://`` broker URLs, and
its Sentinel twin for ``sentinel://`` URLs (see ``herald.state.redisconn``).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from herald.state.poison import ScreenedReads

TRANSPORT = "herald.state.broker:Transport"
SENTINEL_TRANSPORT = "herald.state.broker:SentinelTransport"


class ReportDetached:
    """Mixin for kombu's Redis channels: a detached connection is a connection error.

    Parameters: none. Hook: ``_connparams``, which kombu calls to (re)connect; when Celery has
    already closed the connection it raises ``redis.ConnectionError`` (which the worker
    recovers from in place) instead of kombu's ``AttributeError`` (which ends the worker).
    """

    connection: Any

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection was already closed")
        base: Any = super()
        params: dict[str, Any] = base._connparams(asynchronous)
        return params


class Channel(ReportDetached, ScreenedReads, kombu_redis.Channel):
    """A Redis channel that reports a detached connection as a connection error."""


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class SentinelChannel(ReportDetached, ScreenedReads, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with the same repair as :class:`Channel`."""


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with :class:`SentinelChannel`."""

    Channel = SentinelChannel


def transport_for(url: str) -> str | None:
    """The transport to use for a broker URL (None: kombu's choice)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return TRANSPORT
    if url.strip().lower().startswith("sentinel://"):
        return SENTINEL_TRANSPORT
    return None
