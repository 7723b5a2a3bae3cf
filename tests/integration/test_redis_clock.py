"""Every script reads Redis's clock (plus the test offset): hosts whose clocks differ agree.

The scripts also write the times of the events stream themselves (``iso`` in
``lua/_common.lua``); they must read exactly as ``herald.state.store.iso`` writes them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from herald.state import store
from tests.harness import redis_of_its_own

pytestmark = pytest.mark.integration

PROBE = "return {iso(tonumber(ARGV[1])), tostring(clock(ARGV[2]))}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    with redis_of_its_own(tmp_path_factory.mktemp("clock-redis")) as url:
        conn = redis.Redis.from_url(url)
        yield conn
        conn.close()


def _probe(client: redis.Redis, ts: float, offset: float = 0) -> tuple[str, float]:
    common = (Path(store.__file__).parent / "lua" / "_common.lua").read_text()
    iso, now = client.eval(common + "\n" + PROBE, 0, repr(ts), offset)
    return iso.decode(), float(now)


def test_lua_iso_matches_python_to_the_millisecond(client: redis.Redis) -> None:
    rng = random.Random(7)
    instants = [
        0.0,
        951782400.0,
        4102444799.999,
        1709251199.5,
        1798761599.9994,
    ]  # 2000-02-29, leap days, edges
    instants += [rng.uniform(0, 4102444800) for _ in range(300)]
    for ts in instants:
        assert _probe(client, ts)[0] == store.iso(ts), ts


def test_the_clock_is_redis_time_plus_the_offset(client: redis.Redis) -> None:
    seconds, micros = client.time()
    redis_now = seconds + micros / 1e6

    _, now = _probe(client, 0, offset=3600.5)

    assert redis_now + 3600.5 <= now < redis_now + 3600.5 + 5
    assert datetime.fromtimestamp(now, tz=UTC).year >= 2026
