"""State: herald's Redis.

Key names and readers, the Lua scripts (``lua/``, each opening with its KEYS and ARGV) and their
calls pipelined by ``EVALSHA`` alone (``scriptcalls``), Redis and Sentinel connections, the
broker transport, queue names and the Celery configuration every process shares, and a
reminder's status as people and machines read it. May import core only.
"""
