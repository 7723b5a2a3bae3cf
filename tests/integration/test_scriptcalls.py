"""Script calls by EVALSHA alone (herald.state.scriptcalls), on a real redis-server: one round trip
with no SCRIPT EXISTS, each call run exactly once even after Redis lost its script cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from herald.state.scriptcalls import ScriptCall, call_scripts
from tests.harness import redis_of_its_own

pytestmark = pytest.mark.integration

COUNT = """
if ARGV[1] == 'bad' then return redis.error_reply('refused: bad argument') end
return redis.call('INCR', KEYS[1])
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_of_its_own(tmp_path_factory.mktemp("scriptcalls"), initialized=False) as found:
        yield found


def _run(url: str, arguments: list[str], key: str = "count") -> list[object]:
    async def go() -> list[object]:
        client = aioredis.Redis.from_url(url)
        try:
            script = client.register_script(COUNT)
            calls: list[ScriptCall] = [(script, [key], [argument]) for argument in arguments]
            return await call_scripts(client, calls)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _script_commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_script"))


def test_calls_of_a_cached_script_send_no_script_exists(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.delete("count")
    client.script_load(COUNT)
    client.config_resetstat()
    assert _run(url, ["a", "b", "c"]) == [1, 2, 3]
    assert _script_commands(client) == 0
    assert int(client.info("commandstats")["cmdstat_evalsha"]["calls"]) == 3


def test_after_redis_lost_its_scripts_each_call_runs_once(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.delete("count")
    client.script_flush()
    assert _run(url, ["a", "b"]) == [1, 2]  # loaded, then sent again: NOSCRIPT ran nothing
    assert int(client.get("count") or 0) == 2


def test_a_script_error_is_raised_after_every_call_ran(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.delete("count")
    with pytest.raises(ResponseError, match="refused: bad argument"):
        _run(url, ["a", "bad", "c"])
    assert int(client.get("count") or 0) == 2
