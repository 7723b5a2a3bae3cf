"""The last moment holds when the provider is slow, backed up or failing: the Twilio stand-in.

The pipeline runs in this process (one worker process's runtime) against a redis-server of its
own and the session's Twilio stand-in, so the test sees every request arrive:

- a hold committed while work waits behind a small in-flight limit stops all of it but what
  was already in flight (the claim happens inside the send slot, not for the whole batch);
- an answer that takes longer than a lease is recorded as sent, never ``in_doubt`` (the lease
  is renewed while the request is out);
- an attempt the provider refused is no contact: a 1-in-4-hours cap lets its retry through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from herald.config import Settings
from herald.delivery.pipeline import BatchReport, process_batch
from herald.delivery.runtime import Runtime
from herald.delivery.scheduler import Scheduler
from herald.holds.suppression import Hold, SuppressionStore
from herald.state import store
from herald.state.store import cap_key
from tests.harness import Unpublished, redis_of_its_own, wait_until
from tests.providers.conftest import SENDER, Providers
from tests.providers.helpers import fresh_phone, sms

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(providers: Providers, tmp_path: Path, repo_root: Path) -> Iterator[Settings]:
    providers.reset()
    with redis_of_its_own(tmp_path / "redis") as url:
        yield Settings(
            redis_url=url,
            templates_dir=repo_root / "templates",
            outbox_dir=tmp_path / "outbox",
            send_window="00:00-24:00",
            caps="",
            duplicate_window=0,
            sms_provider="twilio",
            twilio_from=SENDER,
            twilio_api_base=providers.twilio.url,
            rate_sms="off",
            **{  # type: ignore[arg-type]
                "TWILIO_ACCOUNT_SID": providers.twilio.account_sid,
                "TWILIO_AUTH_TOKEN": providers.twilio.auth_token,
            },
        )
    providers.reset()


def _stored(settings: Settings, reminders: list[dict[str, Any]]) -> list[str]:
    results = Unpublished(settings).enqueue_many(reminders)
    assert all(r.status == "accepted" for r in results), [r.reason for r in results]
    return [k for r in results for k in r.deliveries]


def _run(settings: Settings, keys: list[str]) -> BatchReport:
    async def go() -> BatchReport:
        rt = Runtime(settings)
        try:
            return await process_batch(rt, "sms", keys)
        finally:
            await rt.close()

    return asyncio.run(go())


def test_a_hold_committed_while_work_waits_for_a_slow_provider_stops_all_but_what_was_in_flight(
    settings: Settings, providers: Providers
) -> None:
    twilio = providers.twilio
    in_flight = 4
    slow = settings.model_copy(update={"in_flight": in_flight, "provider_timeout": 10.0})
    reminders = [sms(fresh_phone(), account_id=f"acct-backlog-{i}") for i in range(40)]
    keys = _stored(slow, reminders)
    twilio.hang_all(0.5)  # every answer takes half a second: the batch queues behind 4 slots
    holds = SuppressionStore(redis.Redis.from_url(slow.redis_url))
    committed: list[int] = []

    def sign_agreements() -> None:
        twilio.wait_accepted(8, timeout=60)
        holds.add_many(
            [
                Hold(
                    id="agreement:A", account_id=r["account_id"], source="agreement", reason="signed", by="t"
                )
                for r in reminders
            ]
        )
        committed.append(twilio.requests)  # requests that had reached the provider by then

    signer = threading.Thread(target=sign_agreements)
    signer.start()
    report = _run(slow, keys)
    signer.join(timeout=60)

    assert committed, "the holds were never committed"
    after_hold = twilio.requests - committed[0]
    assert after_hold <= in_flight, f"{after_hold} requests reached the provider after the holds"
    sent = [k for k, o in report.outcomes.items() if o == "sent"]
    suppressed = [k for k, o in report.outcomes.items() if o == "suppressed"]
    assert len(sent) + len(suppressed) == len(keys)
    assert len(sent) == twilio.requests
    assert len(suppressed) >= len(keys) - committed[0] - in_flight


def test_an_answer_slower_than_a_lease_is_recorded_sent_never_in_doubt(
    settings: Settings, providers: Providers
) -> None:
    hold = 10  # the shortest hold: the answer comes after one and a half leases
    patient = settings.model_copy(update={"hold_seconds": hold, "provider_timeout": 30.0})
    phone = fresh_phone()
    (key,) = _stored(patient, [sms(phone, account_id="acct-slow-answer")])
    providers.twilio.hang_to(phone, hold * 1.5)
    client = redis.Redis.from_url(patient.redis_url)
    sweeper = Scheduler(patient, Celery("unused"), client)
    swept: list[str] = []
    done = threading.Event()

    def sweep() -> None:  # the scheduler's lease sweep, as often as herald scheduler runs it
        while not done.wait(0.5):
            swept.extend(sweeper.expire_leases())

    thread = threading.Thread(target=sweep)
    thread.start()
    try:
        report = _run(patient, [key])
    finally:
        done.set()
        thread.join(timeout=10)

    assert report.outcomes == {key: "sent"}
    assert swept == []
    assert client.hget(store.delivery_redis_key(key), "outcome") == b"sent"
    assert client.zscore(store.IN_DOUBT, key) is None
    assert len(providers.twilio.accepted_to(phone)) == 1


def test_an_attempt_the_provider_refused_does_not_count_against_the_cap_of_its_retry(
    settings: Settings, providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    capped = settings.model_copy(
        update={
            "caps": "sms.collection=1/4h",
            "quick_attempts": 2,
            "quick_max_seconds": 1.0,
            "retry_base": 60.0,
        }
    )
    phone = fresh_phone()
    (key,) = _stored(capped, [sms(phone, account_id="acct-outage")])
    providers.twilio.set_outage(503)

    first = _run(capped, [key])
    assert key in first.deferred  # retrying: nothing was sent
    client = redis.Redis.from_url(capped.redis_url, decode_responses=True)
    assert client.hget(store.delivery_redis_key(key), "state") == "retrying"
    assert client.zcard(cap_key("acct-outage", "sms", "collection")) == 0  # no contact counted

    providers.twilio.set_outage(None)
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(first.deferred[key] - _redis_now(client) + 1))
    second = _run(capped, [key])

    assert second.outcomes == {key: "sent"}
    wait_until(lambda: len(providers.twilio.accepted_to(phone)) == 1, 10, "the retry at the provider")


def _redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6
