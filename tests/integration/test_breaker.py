"""Providers' circuit breakers on a real redis-server: what opens one, how long it stays open
(on Redis's clock, travelled with the clock offset), what never counts, and one process's
failures protecting another process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from herald import clock
from herald.channels.base import AmbiguousError, Deferred, PermanentError, ProviderDown, RetryableError
from herald.config import Settings
from herald.routing.breaker import BREAKERS, Breakers, openings
from herald.state import store
from tests.harness import redis_of_its_own

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_of_its_own(tmp_path_factory.mktemp("breakers"), initialized=False) as found:
        yield found


@pytest.fixture(autouse=True)
def clean(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    redis.Redis.from_url(url).flushall()
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "0")
    return


def _settings() -> Settings:
    return Settings()  # the defaults: 10 calls, half failing, over 30 s; 60 s of cool-down


class Process:
    """One process's breakers, on its own connection (its clock: Redis's, with the offset)."""

    def __init__(self, url: str, providers: tuple[str, ...] = ("aliyun", "twilio")) -> None:
        self.url = url
        self.providers = providers
        self.now = 0.0

    def run(self, *answers: tuple[str, BaseException | None]) -> Breakers:
        async def go() -> Breakers:
            client = aioredis.Redis.from_url(self.url)
            try:
                script = client.register_script(store.script_source("breaker"))
                breakers = Breakers(_settings(), client, script, self.providers, lambda: self.now)
                for provider, exc in answers:
                    breakers.observe(provider, exc)
                answer = await breakers.flush()
                self.opened = answer
                return breakers
            finally:
                await client.aclose()

        self.now = float(redis.Redis.from_url(self.url).time()[0]) + clock.offset()  # as the runtime sees it
        return asyncio.run(go())


def _failures(n: int, provider: str = "aliyun") -> list[tuple[str, BaseException | None]]:
    return [(provider, RetryableError("503", code=503)) for _ in range(n)]


def test_a_provider_failing_half_its_calls_is_skipped_for_the_cool_down(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = Process(url)
    breakers = process.run(*_failures(4), ("aliyun", None), ("aliyun", None), ("aliyun", None))
    assert not breakers.is_open("aliyun")  # 7 calls: under the 10 needed
    breakers = process.run(*_failures(1), ("aliyun", AmbiguousError("timeout")), ("aliyun", None))
    assert process.opened == ["aliyun"]  # 10 calls, 6 failed
    assert breakers.is_open("aliyun")
    assert not breakers.is_open("twilio")
    (opening,) = openings(redis.Redis.from_url(url).hgetall(BREAKERS))
    assert opening.provider == "aliyun"
    assert opening.until - opening.opened_at == 60
    assert "6 of 10 calls failed" in opening.reason

    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "59")
    assert Process(url).run().is_open("aliyun")
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "61")
    later = Process(url)
    assert not later.run().is_open("aliyun")
    assert not later.run(*_failures(9)).is_open("aliyun")  # the counts started again
    assert later.run(*_failures(1)).is_open("aliyun")


def test_refusals_of_the_message_and_limits_on_the_recipient_never_count(url: str) -> None:
    process = Process(url)
    answers: list[tuple[str, BaseException | None]] = [
        ("aliyun", PermanentError("isv.MOBILE_NUMBER_ILLEGAL")) for _ in range(20)
    ]
    answers += [("aliyun", Deferred("isv.BUSINESS_LIMIT_CONTROL", retry_after=3600)) for _ in range(20)]
    answers += _failures(9)
    assert not process.run(*answers).is_open("aliyun")  # 9 failures in 29 counted calls


def test_failures_spread_over_more_than_the_window_do_not_add_up(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Process(url).run(*_failures(9))
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", "31")
    assert not Process(url).run(*_failures(1)).is_open("aliyun")


def test_a_provider_that_says_it_is_down_is_skipped_at_once(url: str) -> None:
    process = Process(url)
    down = ProviderDown("isv.AMOUNT_NOT_ENOUGH: out of credit", code="isv.AMOUNT_NOT_ENOUGH")
    breakers = process.run(("aliyun", down))
    assert process.opened == ["aliyun"]
    assert breakers.is_open("aliyun")
    (opening,) = openings(redis.Redis.from_url(url).hgetall(BREAKERS))
    assert "AMOUNT_NOT_ENOUGH" in opening.reason


def test_one_process_failures_open_the_breaker_for_another_process(url: str, repo_root: Path) -> None:
    script = f"""
import asyncio, sys
import redis.asyncio as aioredis
from herald import clock
from herald.channels.base import RetryableError
from herald.config import Settings
from herald.routing.breaker import Breakers
from herald.state import store
async def main():
    client = aioredis.Redis.from_url({url!r})
    script = client.register_script(store.script_source("breaker"))
    breakers = Breakers(Settings(), client, script, ("aliyun", "twilio"), lambda: 0.0)
    for _ in range(6):
        breakers.observe("twilio", RetryableError("connection refused", code="connect"))
    for _ in range(4):
        breakers.observe("twilio", None)
    print(await breakers.flush())
    await client.aclose()
asyncio.run(main())
"""
    watcher = Process(url)
    assert not watcher.run().is_open("twilio")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=repo_root, check=True
    )
    assert done.stdout.strip() == "['twilio']"
    assert watcher.run().is_open("twilio")  # this process made no call to Twilio
