"""Intake: validation per reminder, idempotency by id, the enqueue command."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.harness import Herald, make_reminder

pytestmark = pytest.mark.integration


def test_invalid_reminders_are_rejected_with_their_fields_and_spare_the_batch(system: Herald) -> None:
    good = make_reminder(channels=["sms"])
    bad_phone = make_reminder()
    bad_phone["to"] = {**bad_phone["to"], "phone": "13800138000"}
    bad_many = make_reminder(kind="nope", category="collection")
    del bad_many["to"]["email"]
    results = system.producer().enqueue_many([bad_phone, good, bad_many, "not an object"])

    assert [r.status for r in results] == ["rejected", "accepted", "rejected", "rejected"]
    assert [e.field for e in results[0].errors] == ["to.phone"]
    assert {e.field for e in results[2].errors} == {"category", "kind", "to.email"}
    assert results[3].errors[0].message == "a reminder must be a JSON object"
    assert system.redis().exists(f"herald:r:{bad_phone['id']}") == 0
    assert system.wait_outcome(f"{good['id']}:sms")["outcome"] == "sent"


def test_duplicate_returns_the_earlier_result_and_conflict_is_refused(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    producer = system.producer()
    first = producer.enqueue(reminder)
    again = producer.enqueue(json.loads(json.dumps(reminder)))
    changed = make_reminder(id=reminder["id"], channels=["sms"])
    changed["data"]["amount_due"] = "99.00"
    conflict = producer.enqueue(changed)

    assert first.status == "accepted"
    assert again.status == "duplicate"
    assert again.accepted_at == first.accepted_at
    assert again.deliveries == first.deliveries
    assert conflict.status == "conflict"
    assert "different reminder" in conflict.reason
    system.wait_outcome(f"{reminder['id']}:sms")
    (line,) = system.outbox_lines("sms", reminder["id"])
    assert "¥1,234.50" in line["content"]["text"]  # the first body, never the conflicting one


def test_same_id_twice_in_one_batch(system: Herald) -> None:
    reminder = make_reminder(channels=["push"])
    results = system.producer().enqueue_many([reminder, reminder])
    assert [r.status for r in results] == ["accepted", "duplicate"]


def test_many_batches_keep_input_order_and_a_batch_sees_the_one_stored_before_it(system: Herald) -> None:
    """Each batch is validated while the one before it is stored: results stay in input order,
    progress counts every batch, and a repeat in a later batch finds the earlier one stored."""
    size = system.settings().intake_batch
    reminders = [make_reminder(channels=["push"]) for _ in range(2 * size + 7)]
    reminders[size + 3] = "not an object"  # a rejection in the second batch
    reminders[-1] = dict(reminders[0])  # the first reminder again, in the last batch
    done: list[int] = []
    results = system.producer().enqueue_many(reminders, progress=done.append)

    assert done == [size, size, 7]
    assert [r.id for r in results if r.status != "rejected"] == [
        r["id"] for r in reminders if isinstance(r, dict)
    ]
    assert [r.status for r in results].count("rejected") == 1
    assert results[size + 3].status == "rejected"
    assert results[-1].status == "duplicate"
    assert results[-1].accepted_at == results[0].accepted_at


def test_enqueue_command_summarises_and_lists_the_lines_not_accepted(system: Herald, tmp_path) -> None:
    good = make_reminder(channels=["sms"])
    invalid = make_reminder(channels=["sms"])
    invalid["to"] = {**invalid["to"], "timezone": "Mars/Olympus"}
    conflicting = {**good, "data": {**good["data"], "amount_due": "1.00"}}
    lines = [
        orjson.dumps(good).decode(),
        "",
        orjson.dumps(invalid).decode(),
        "{not json",
        orjson.dumps(good).decode(),
        orjson.dumps(conflicting).decode(),
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")

    done = system.cli("enqueue", str(path))
    assert done.returncode == 1, done.stderr
    out = " ".join(done.stdout.split())
    assert "accepted" in out
    assert "duplicate" in out
    assert "1 accepted, 1 duplicate, 2 rejected, 1 conflict" in out
    assert "to.timezone" in out
    assert invalid["id"] in out
    assert "not valid JSON" in out
    assert "different reminder" in out

    as_json = system.cli("enqueue", "--json", "-", input=orjson.dumps(make_reminder()).decode())
    assert as_json.returncode == 0, as_json.stderr
    (answer,) = [json.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
    assert answer["status"] == "accepted"
    assert answer["line"] == 1


def test_status_command(system: Herald) -> None:
    reminder = make_reminder(channels=["sms", "push"])
    system.producer().enqueue(reminder)
    for channel in ("sms", "push"):
        system.wait_outcome(f"{reminder['id']}:{channel}")

    done = system.cli("status", reminder["id"], "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["category"] == "collection"
    assert [(d["channel"], d["outcome"]) for d in view["deliveries"]] == [("sms", "sent"), ("push", "sent")]
    assert all(d["finished_at"] for d in view["deliveries"])

    table = system.cli("status", reminder["id"])
    assert table.returncode == 0
    assert "sent" in table.stdout

    unknown = system.cli("status", "no-such-reminder")
    assert unknown.returncode == 1
    assert "no reminder" in unknown.stderr
