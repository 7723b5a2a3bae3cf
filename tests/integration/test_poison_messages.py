"""Malformed and foreign messages on herald's queues: dead-lettered once each, never a crash loop.

Raw items pushed onto the queue lists with redis-py, messages of another application published
with kombu, and herald tasks with the wrong arguments: each ends as one ``message`` entry of the
dead-letter stream and is gone from its queue, the worker processes keep running, and a good
reminder sent after them is delivered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from herald.state.queues import EMAIL, INTAKE, PUSH, SMS, SMS_BULK, make_celery
from tests.harness import OUTCOME_TIMEOUT, Herald, make_reminder, wait_until

pytestmark = pytest.mark.integration

DEADLETTER = "herald:deadletter"
PHONE = "+8613800138000"


@pytest.fixture
def celery_app(system: Herald) -> Iterator[Celery]:
    app = make_celery(system.settings())
    try:
        yield app
    finally:
        app.close()


def _publish(app: Celery, queue: str, body: Any, **options: Any) -> None:
    """One message as another application would send it with kombu (no Celery task)."""
    with app.connection_for_write() as connection:
        connection.Producer().publish(body, exchange="", routing_key=queue, **options)


def _task_headers(task: Any = "herald.deliver") -> dict[str, Any]:
    return {"task": task, "id": str(uuid.uuid4()), "lang": "py"}


def _message_letters(client: redis.Redis, after: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (entry_id, fields)
        for entry_id, fields in client.xrange(DEADLETTER, min=f"({after}", max="+")
        if fields.get("type") == "message"
    ]


def _last_id(client: redis.Redis) -> str:
    last = client.xrevrange(DEADLETTER, count=1)
    return str(last[0][0]) if last else "0-0"


def test_bad_messages_are_dead_lettered_once_and_the_good_one_is_delivered(
    system: Herald, celery_app: Celery
) -> None:
    client = system.redis()
    start = _last_id(client)
    worker_log = system.logs / "worker.log"
    log_start = worker_log.stat().st_size

    # raw items kombu cannot take as a message
    client.lpush(SMS, b"not json at all")
    client.lpush(EMAIL, b'{"hello": "world", "phone": "' + PHONE.encode() + b'"}')
    # another application's task, and another application's plain message
    celery_app.send_task("billing.recalculate", args=[42], queue=PUSH)
    _publish(celery_app, SMS_BULK, {"event": "payment", "phone": PHONE}, serializer="json")
    _publish(
        celery_app, INTAKE, {"task": "legacy.task", "id": "l-1", "args": [], "kwargs": {}}, serializer="json"
    )
    # herald's task name on bodies it cannot use
    _publish(
        celery_app,
        SMS,
        b"\x80\x04K\x01.",
        content_type="application/x-python-serialize",
        content_encoding="binary",
        headers=_task_headers(),
    )
    _publish(
        celery_app,
        EMAIL,
        b'{"x": 1}',
        content_type="application/json",
        content_encoding="utf-8",
        headers=_task_headers(),
    )
    _publish(
        celery_app,
        PUSH,
        b"\xff not json",
        content_type="application/json",
        content_encoding="utf-8",
        headers=_task_headers(),
    )
    # herald's tasks with the wrong arguments
    celery_app.send_task("herald.deliver", args=["fax", ["t-1:fax"]], queue=SMS)
    celery_app.send_task("herald.intake", args=[{"keys": "not a list"}], queue=INTAKE)
    celery_app.send_task("herald.deliver", args=[], queue=EMAIL)
    bad_count = 11

    good = make_reminder(channels=["sms"])
    assert system.producer().enqueue(good).status == "accepted"

    assert system.wait_outcome(f"{good['id']}:sms")["outcome"] == "sent"
    letters = wait_until(
        lambda: (found := _message_letters(client, start)) and len(found) >= bad_count and found,
        OUTCOME_TIMEOUT,
        f"{bad_count} dead-lettered messages",
    )
    system.wait_idle()  # every queue (each lane, each priority list) empty, nothing unacknowledged

    assert len(_message_letters(client, start)) == bad_count  # one entry each, none repeated
    seen = {(f["queue"], f["task"], f["reason"].split(":")[0]) for _, f in letters}
    assert seen == {
        (SMS, "", "not a kombu message"),
        (EMAIL, "", "not a kombu message"),
        (PUSH, "billing.recalculate", "unknown task 'billing.recalculate'"),
        (SMS_BULK, "", "not a Celery task message (it names no task)"),
        (INTAKE, "legacy.task", "unknown task 'legacy.task'"),  # Celery's message protocol 1
        (SMS, "herald.deliver", "invalid task message"),
        (EMAIL, "herald.deliver", "malformed task message"),
        (PUSH, "herald.deliver", "body cannot be decoded (application/json)"),
        (SMS, "herald.deliver", "bad arguments"),
        (INTAKE, "herald.intake", "bad arguments"),
        (EMAIL, "herald.deliver", "bad arguments"),
    }
    reasons = " ".join(f["reason"] for _, f in letters)
    assert "unknown channel 'fax'" in reasons
    assert "the keys are a dict, not a list" in reasons
    assert "expected two arguments (channel, keys)" in reasons
    samples = " ".join(f["message"] for _, f in letters)
    assert "not json at all" in samples
    assert PHONE not in samples  # a sample is masked ...
    assert "+86138****8000" in samples  # ... and still says what it was
    assert all(f["at"] for _, f in letters)

    log = worker_log.read_bytes()[log_start:].decode("utf-8", "replace")
    assert "Unrecoverable error" not in log
    assert "exited with" not in log  # no worker process stopped (the supervisor would say so)
    assert PHONE not in log


def test_deadletter_commands_list_messages_and_never_replay_them(system: Herald) -> None:
    client = system.redis()
    start = _last_id(client)
    client.lpush(PUSH, b"\x00\x01 garbage for the list command")
    ((entry_id, _),) = wait_until(
        lambda: _message_letters(client, start), OUTCOME_TIMEOUT, "the garbage to be dead-lettered"
    )

    listed = system.cli("deadletter", "list", "--count", "100000")
    replayed = system.cli("deadletter", "replay", entry_id)
    dropped = system.cli("deadletter", "drop", entry_id)

    assert listed.returncode == 0, listed.stderr
    assert entry_id in listed.stdout
    assert f"message on {PUSH}" in listed.stdout
    assert "not a kombu message" in listed.stdout
    assert replayed.returncode == 1
    assert f"no dead delivery for: {entry_id}" in " ".join(replayed.stderr.split())
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 1 entries" in dropped.stdout
    assert not client.xrange(DEADLETTER, min=entry_id, max=entry_id)
