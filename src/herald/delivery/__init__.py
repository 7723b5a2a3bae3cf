"""Delivery: what a worker process does with a batch of delivery keys.

The pipeline (take, guards, render, slot, token, claim, request, record), its runtime, the
Redis steps it coalesces, the keeper of holds and leases, retries, the cluster-wide rate limit,
frequency caps, the scheduler, in-doubt and dead deliveries, malformed messages. May import
core, ``rendering``, ``state``, ``holds``, ``guards`` and ``channels``; never ``intake``'s
producer, ``ops``, ``api``, ``cli`` or the ``worker`` package.
"""
