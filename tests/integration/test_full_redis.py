"""A Redis at its maxmemory refuses writes: herald says so, keeps what it accepted, and loses
nothing once memory is freed. A delivery stored but never published is in work again a hold
(60 s) after its acceptance, not a visibility timeout (an hour).

Against the session's running system (real workers and scheduler); the test lowers the
redis-server's maxmemory and always puts it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from herald.state.fanout import mark_queued
from tests.harness import Herald, Unpublished, make_reminder, running_herald

pytestmark = pytest.mark.integration

HOLD = 60  # the default HERALD_HOLD_SECONDS


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    """A system of this module's own: a full Redis can crash a worker's Celery consumer (kombu
    cannot record a message it popped), and what that leaves in the broker must not reach the
    session's other tests."""
    with running_herald(tmp_path_factory.mktemp("full-redis"), repo_root) as found:
        yield found


@pytest.fixture
def system(own: Herald) -> Iterator[Herald]:
    """This module's system, its clock put back to real time after each test."""
    yield own
    own.shift_clock(0)


@pytest.fixture
def tight(system: Herald) -> Iterator[redis.Redis]:
    """The system's Redis, its maxmemory put back after the test."""
    client = system.redis()
    before = client.config_get("maxmemory")["maxmemory"]
    try:
        yield client
    finally:
        client.config_set("maxmemory", before)


def test_a_full_redis_is_said_as_such_what_was_accepted_is_counted_and_nothing_is_lost(
    system: Herald, tight: redis.Redis, tmp_path: Path
) -> None:
    reminders = [make_reminder(channels=["push"], account_id=f"acct-full-{i}") for i in range(3000)]
    batch = tmp_path / "big.jsonl"
    batch.write_bytes(b"\n".join(orjson.dumps(r) for r in reminders) + b"\n")
    used = int(tight.info("memory")["used_memory"])
    tight.config_set("maxmemory", used + 3 * 2**20)  # room for part of the file only

    stopped = system.cli("enqueue", str(batch))

    tight.config_set("maxmemory", 0)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    error = " ".join(stopped.stderr.split())
    assert "is full: it refuses writes" in error
    assert "cannot reach" not in error
    assert "Running the same file again is safe" in error
    summary = " ".join(stopped.stdout.split())
    accepted = int(summary.split(" accepted")[0].split()[-1])
    assert 0 < accepted < len(reminders)

    again = system.cli("enqueue", "--json", str(batch))
    assert again.returncode == 0, again.stderr
    statuses = [json.loads(line)["status"] for line in again.stdout.splitlines() if line.strip()]
    assert statuses.count("duplicate") == accepted
    assert statuses.count("accepted") == len(reminders) - accepted
    system.shift_clock(HOLD + 5)  # a stored chunk whose publish the full Redis refused: reconciled
    assert system.cli("reconcile", "--once").returncode == 0
    # A worker that popped a message while Redis refused kombu's record of it (its "unacked"
    # hash) lost that message in the broker itself, before any delivery in it was taken: those
    # deliveries' deadline is the broker's, the visibility timeout.
    system.shift_clock(HOLD + 5 + system.settings().visibility_timeout)
    assert system.cli("reconcile", "--once").returncode == 0
    for r in reminders:
        assert system.wait_outcome(f"{r['id']}:push")["outcome"] == "sent"
    ours = {r["id"] for r in reminders}
    lines = (system.outbox / "push.jsonl").read_bytes().splitlines()
    ids = [i for i in (orjson.loads(line)["reminder_id"] for line in lines) if i in ours]
    assert len(ids) == len(set(ids)) == len(reminders)  # each exactly once


def test_the_api_answers_503_naming_a_full_redis(system: Herald, tight: redis.Redis) -> None:
    from fastapi.testclient import TestClient

    from herald.access.apikeys import KeyStore
    from herald.api.app import create_app

    key, _ = KeyStore(redis.Redis.from_url(system.url)).create("full-test", ["producer"], by="tests")
    with TestClient(create_app(system.settings()), raise_server_exceptions=False) as api:
        tight.config_set("maxmemory", int(tight.info("memory")["used_memory"]) // 2)
        answer = api.post("/v1/reminders", json=make_reminder(), headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 503
    assert "Redis is full" in answer.json()["detail"]


def test_a_delivery_stored_but_never_published_is_in_work_a_hold_after_its_acceptance(system: Herald) -> None:
    env = {**system.env, "HERALD_RECONCILE_INTERVAL": "0.2"}
    proc = system.stack.spawn("reconcile-hold", ["reconcile"], env=env)
    try:
        lost = make_reminder(channels=["push"])
        assert Unpublished(system.settings()).enqueue(lost).status == "accepted"  # the producer died here
        key = f"{lost['id']}:push"
        system.shift_clock(HOLD / 2)
        assert system.delivery(key)["state"] == "accepted"  # not yet: its publisher may still be at it
        system.shift_clock(HOLD + 5)
        state = system.wait_outcome(key)
        assert (state["outcome"], state["reconciled"]) == ("sent", "1")
        assert len(system.outbox_lines("push", lost["id"])) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_published_delivery_waits_its_turn_in_a_deep_queue_without_being_republished(
    system: Herald,
) -> None:
    queued = make_reminder(channels=["email"])
    producer = Unpublished(system.settings())
    (key,) = producer.enqueue(queued).deliveries
    mark_queued(redis.Redis.from_url(system.url), [key], system.settings().visibility_timeout)  # published

    system.shift_clock(HOLD + 5)
    run = system.cli("reconcile", "--once")

    assert run.returncode == 0, run.stderr
    state = system.delivery(key)
    assert "reconciled" not in state  # the broker has it: its deadline is an hour away, not a hold
    assert state["state"] == "accepted"
