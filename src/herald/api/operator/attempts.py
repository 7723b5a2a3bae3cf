"""Sign-in attempts on the operator page, limited per client address and per key id.

A wrong key answers 401 like any other; after :data:`MAX_FAILURES` wrong keys from one client
address, or for one key id (the id part of a well-formed key, ``hk_<id>_<secret>``), within
:data:`WINDOW` seconds, sign-in answers 429 without looking at the key until the window ends: a
key cannot be guessed at full speed, from one address or from many. A sign-in that succeeds
clears its address's and its key's counts. The counts live in Redis (every ``herald api``
process shares them) and expire with their window.
"""

from __future__ import annotations

import redis

from herald.access.apikeys import split_key
from herald.state import store

MAX_FAILURES = 10
"""Wrong keys allowed per client address, and per key id, in one window."""
WINDOW = 900
"""Seconds a window lasts, from its first failure."""
PREFIX = store.PREFIX + "operator:signin:"


def _keys(client_address: str, key: str) -> list[str]:
    keys = [f"{PREFIX}addr:{client_address}"]
    parts = split_key(key.strip())
    if parts is not None:
        keys.append(f"{PREFIX}key:{parts[0]}")
    return keys


class SignInAttempts:
    """Counts failed sign-ins. Parameters: ``client`` (Redis)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def retry_after(self, client_address: str, key: str) -> int:
        """Seconds until sign-in with ``key`` from ``client_address`` is looked at again; 0
        when it may be tried now."""
        keys = _keys(client_address, key)
        with self.redis.pipeline(transaction=False) as pipe:
            for name in keys:
                pipe.get(name)
                pipe.ttl(name)
            answers = pipe.execute()
        waits = [
            max(int(ttl), 1)
            for count, ttl in zip(answers[::2], answers[1::2], strict=True)
            if count is not None and int(count) >= MAX_FAILURES
        ]
        return max(waits, default=0)

    def failed(self, client_address: str, key: str) -> None:
        """Count a wrong key (a window starts with its first failure)."""
        with self.redis.pipeline(transaction=True) as pipe:
            for name in _keys(client_address, key):
                pipe.incr(name)
                pipe.expire(name, WINDOW, nx=True)
            pipe.execute()

    def succeeded(self, client_address: str, key: str) -> None:
        """Forget the failures of this address and this key."""
        self.redis.delete(*_keys(client_address, key))
