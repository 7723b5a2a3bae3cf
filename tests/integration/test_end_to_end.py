"""A reminder travels end to end: producer -> Redis -> worker -> rendered -> outbox."""

from __future__ import annotations

import orjson
import pytest

from herald.state import store
from herald.state.queues import ALL_QUEUES, BULK_QUEUES, CHANNEL_QUEUES, INTAKE, make_celery
from tests.harness import HeldBackProducer, Herald, make_reminder

pytestmark = pytest.mark.integration


def test_one_outbox_line_per_channel_with_rendered_content(system: Herald) -> None:
    reminder = make_reminder()
    result = system.producer().enqueue(reminder)
    assert result.status == "accepted", result.reason
    assert result.deliveries == [f"{reminder['id']}:{c}" for c in ("sms", "email", "push")]

    for key in result.deliveries:
        state = system.wait_outcome(key)
        assert state["outcome"] == "sent", state
        assert state["state"] == "sent"

    sms = system.outbox_lines("sms", reminder["id"])
    email = system.outbox_lines("email", reminder["id"])
    push = system.outbox_lines("push", reminder["id"])
    assert len(sms) == len(email) == len(push) == 1
    assert sms[0]["to"] == "+8613800138000"
    assert sms[0]["key"] == f"{reminder['id']}:sms"
    text = sms[0]["content"]["text"]
    assert "¥1,234.50" in text
    assert "回复TD退订" in text
    assert "?" not in text
    assert email[0]["to"] == "li.wei@example.cn"
    assert email[0]["content"]["subject"]
    assert "¥1,234.50" in email[0]["content"]["html"]
    assert push[0]["to"] == ["device-token-0001"]
    assert push[0]["content"]["title"]
    assert push[0]["content"]["body"]


def test_outcomes_are_appended_to_the_events_stream(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    system.producer().enqueue(reminder)
    system.wait_outcome(f"{reminder['id']}:sms")
    events = system.redis().xrevrange("herald:events", count=200)
    mine = [fields for _, fields in events if fields["reminder_id"] == reminder["id"]]
    assert len(mine) == 1
    assert mine[0]["outcome"] == "sent"
    assert mine[0]["category"] == "collection"
    assert mine[0]["account_id"] == "acct-1029"


def test_english_recipient_gets_english_text(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    reminder["to"] = {"phone": "+14155550123", "locale": "en", "timezone": "America/New_York"}
    system.producer().enqueue(reminder)
    assert system.wait_outcome(f"{reminder['id']}:sms")["outcome"] == "sent"
    (line,) = system.outbox_lines("sms", reminder["id"])
    assert line["locale"] == "en"
    assert "1234.50 CNY" in line["content"]["text"]
    assert "Reply STOP" in line["content"]["text"]


def test_a_reminder_missing_a_template_field_is_refused_at_intake_and_the_rest_are_sent(
    system: Herald,
) -> None:
    broken = make_reminder(channels=["sms", "email"])
    del broken["data"]["amount_due"]
    good = make_reminder(channels=["sms"])

    refused, accepted = system.producer().enqueue_many([broken, good])

    assert refused.status == "rejected"
    assert [(e.field, e.message) for e in refused.errors] == [
        ("data.amount_due", "is required: the overdue_notice templates for sms, email show it")
    ]
    assert not system.redis().exists(store.reminder_key(broken["id"]))
    assert accepted.status == "accepted"
    assert system.wait_outcome(f"{good['id']}:sms")["outcome"] == "sent"


def test_a_template_that_needs_what_a_stored_reminder_lacks_ends_it_invalid_and_the_worker_keeps_working(
    system: Herald,
) -> None:
    # accepted under templates that did not need amount_due; the templates deployed since do
    older = make_reminder(channels=["sms", "email"])
    good = make_reminder(channels=["sms"])
    producer = HeldBackProducer(system.settings())
    assert producer.enqueue(older).status == "accepted"
    client = system.redis()
    body = orjson.loads(client.get(store.body_key(older["id"])))
    del body["data"]["amount_due"]
    client.set(store.body_key(older["id"]), orjson.dumps(body).decode(), keepttl=True)
    producer.release()

    for channel in ("sms", "email"):
        state = system.wait_outcome(f"{older['id']}:{channel}")
        assert state["outcome"] == "invalid"
        assert "amount_due" in state["reason"]
        assert ".j2" in state["reason"]
    assert system.outbox_lines("sms", older["id"]) == []

    assert system.producer().enqueue(good).status == "accepted"
    assert system.wait_outcome(f"{good['id']}:sms")["outcome"] == "sent"


def test_a_redelivered_batch_does_not_send_twice(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    producer = system.producer()
    producer.enqueue(reminder)
    key = f"{reminder['id']}:sms"
    assert system.wait_outcome(key)["outcome"] == "sent"
    # the broker may hand the same message out again: publish the same key twice more
    producer.publish([key, key])
    system.wait_idle()  # the intake message and the channel message it fanned out are handled
    assert len(system.outbox_lines("sms", reminder["id"])) == 1
    assert system.delivery(key)["attempts"] == "1"


def test_worker_consumes_every_queue_producers_publish_to(system: Herald) -> None:
    app = make_celery(system.settings())
    try:
        replies = app.control.inspect(timeout=5).active_queues() or {}
    finally:
        app.close()
    assert replies, "no worker answered"
    consumed = {q["name"] for queues in replies.values() for q in queues}
    published = {INTAKE, *CHANNEL_QUEUES.values(), *BULK_QUEUES.values()}
    assert published <= consumed
    assert set(ALL_QUEUES) == published
