"""Many calls of herald's Lua scripts in one round trip, by ``EVALSHA`` alone.

redis-py runs a pipeline holding script calls by first asking ``SCRIPT EXISTS`` for every
script in it: one more round trip per pipeline, on the hot path of every claim, record and
rate-limit reservation. Scripts are cached by Redis for as long as it runs, so herald sends
``EVALSHA`` alone and, where Redis answers ``NOSCRIPT`` (it restarted, or its script cache was
flushed), loads the script and sends those calls again: ``NOSCRIPT`` means the call did not run,
so sending it again runs it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

ScriptCall = tuple[AsyncScript, Sequence[str | bytes], Sequence[str | bytes | int | float]]
"""A script, its keys and its arguments."""


async def _send(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


async def call_scripts(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each call's answer, in order, from one pipelined round trip (two after Redis lost its
    script cache); the first error a call raised (a script's own error) is raised after every
    call has run. Connection errors are raised as they happen."""
    if not calls:
        return []
    answers = await _send(client, calls)
    missing = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
    if missing:
        for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
            script.sha = await client.script_load(script.script)
        again = await _send(client, [calls[i] for i in missing])
        for i, answer in zip(missing, again, strict=True):
            answers[i] = answer
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
    return answers
