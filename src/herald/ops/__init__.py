"""Operations: herald's processes and how they are watched.

Worker heartbeats, system health, the consumption watchdog, the reconciler, the worker
supervisor, metrics and their HTTP server, Flower, the embedded redis-server and the local stack
``herald run`` starts. May import every package but ``api``, ``cli`` and ``worker``.
"""
