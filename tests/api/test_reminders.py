"""``/v1/reminders``: the producer's semantics over HTTP (accepted, duplicate, rejected, conflict)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from herald.config import Settings
from herald.state.queues import INTAKE, queue_for
from tests.api.conftest import Keys, auth, build_app, fresh
from tests.harness import make_reminder


def test_one_reminder_is_accepted_with_201_and_published(
    client: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis
) -> None:
    lanes = [queue_for(c, "collection") for c in reminder["channels"]]  # an overdue notice: bulk lanes
    before = [rds.llen(q) for q in [INTAKE, *lanes]]
    response = client.post("/v1/reminders", json=reminder, headers=auth(keys.producer))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["id"] == reminder["id"]
    assert body["deliveries"] == [f"{reminder['id']}:{c}" for c in reminder["channels"]]
    assert body["errors"] == []
    # a reminder alone skips the intake hop: one message on each channel's lane
    assert [rds.llen(q) for q in [INTAKE, *lanes]] == [before[0]] + [n + 1 for n in before[1:]]


def test_many_reminders_at_once_travel_through_intake(
    client: TestClient, keys: Keys, rds: redis.Redis
) -> None:
    batch = [make_reminder(id=fresh("many")) for _ in range(10)]  # 30 deliveries: over HERALD_DIRECT_PUBLISH
    before = rds.llen(INTAKE)
    response = client.post("/v1/reminders", json=batch, headers=auth(keys.producer))
    assert response.status_code == 200, response.text
    assert rds.llen(INTAKE) == before + 1  # one intake message carries the 30 delivery keys


def test_the_same_reminder_again_is_a_duplicate_with_200(
    client: TestClient, keys: Keys, reminder: dict[str, Any]
) -> None:
    first = client.post("/v1/reminders", json=reminder, headers=auth(keys.producer))
    again = client.post("/v1/reminders", json=reminder, headers=auth(keys.producer))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["status"] == "duplicate"
    assert again.json()["accepted_at"] == first.json()["accepted_at"]


def test_the_same_id_with_another_body_is_a_conflict_with_409(
    client: TestClient, keys: Keys, reminder: dict[str, Any]
) -> None:
    assert client.post("/v1/reminders", json=reminder, headers=auth(keys.producer)).status_code == 201
    changed = {**reminder, "data": {**reminder["data"], "amount_due": "99.00"}}
    response = client.post("/v1/reminders", json=changed, headers=auth(keys.producer))
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == "conflict"
    assert "different reminder" in body["reason"]


def test_a_bad_reminder_is_rejected_with_422_naming_each_field(client: TestClient, keys: Keys) -> None:
    bad = make_reminder(kind="no_such_kind", channels=["sms", "fax"])
    bad["to"] = {**bad["to"], "phone": "12345"}
    bad["surprise"] = 1
    response = client.post("/v1/reminders", json=bad, headers=auth(keys.producer))
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "rejected"
    assert body["id"] == bad["id"]
    fields = {e["field"] for e in body["errors"]}
    assert {"channels[1]", "to.phone", "surprise", "kind"} <= fields
    assert client.get(f"/v1/reminders/{bad['id']}", headers=auth(keys.producer)).status_code == 404


def test_an_array_gets_one_result_per_item_in_order(client: TestClient, keys: Keys) -> None:
    good = make_reminder()
    bad = make_reminder(channels=[])
    items: list[Any] = [good, bad, good, "not an object", make_reminder()]
    response = client.post("/v1/reminders", json=items, headers=auth(keys.producer))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
        "accepted",
    ]
    assert body["results"][1]["errors"][0]["field"] == "channels"
    assert body["results"][3]["errors"][0]["message"] == "a reminder must be a JSON object"
    assert (body["accepted"], body["duplicate"], body["rejected"], body["conflict"]) == (2, 1, 2, 0)


@pytest.mark.parametrize(
    "times",
    [
        {"not_before": "9999-12-31T23:59:59+00:00"},
        {"not_before": "9999-12-31T23:59:59-12:00"},
        {"expires_at": "9999-12-31T00:00:00+14:00"},
        {"not_before": "0001-01-01T00:00:00+00:00"},
        {"not_before": "3000-01-01T00:00:00+08:00", "expires_at": "3000-01-02T00:00:00+08:00"},
    ],
)
def test_a_time_far_from_now_rejects_that_item_alone_and_the_rest_are_stored(
    client: TestClient, keys: Keys, rds: redis.Redis, times: dict[str, str]
) -> None:
    before, after = make_reminder(), make_reminder()
    far = {**make_reminder(), **times}
    response = client.post("/v1/reminders", json=[before, far, after], headers=auth(keys.producer))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    if times.get("not_before", "").startswith("0001"):  # long past: sent now, expiry from now
        assert [r["status"] for r in results] == ["accepted"] * 3
    else:
        assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
        assert results[1]["errors"][0]["field"] in times
        assert "days ahead" in results[1]["errors"][0]["message"]
        assert not rds.exists(f"herald:r:{far['id']}")
    for stored in (before, after):
        status = client.get(f"/v1/reminders/{stored['id']}", headers=auth(keys.everything))
        assert status.status_code == 200


def test_an_array_beyond_the_batch_limit_is_refused_whole(settings: Settings, keys: Keys) -> None:
    small = build_app(settings.model_copy(update={"api_max_batch": 3}))
    reminders = [make_reminder() for _ in range(4)]
    with TestClient(small) as client:
        response = client.post("/v1/reminders", json=reminders, headers=auth(keys.producer))
        assert response.status_code == 413
        assert "at most 3" in response.json()["detail"]
        assert "HERALD_API_MAX_BATCH" in response.json()["detail"]
        for r in reminders:  # nothing of a refused batch was stored
            assert client.get(f"/v1/reminders/{r['id']}", headers=auth(keys.producer)).status_code == 404
        assert (
            client.post("/v1/reminders", json=reminders[:3], headers=auth(keys.producer)).status_code == 200
        )


def test_a_body_that_is_not_json_is_a_422_naming_the_body(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/reminders",
        content=b"{not json",
        headers={**auth(keys.producer), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"
    missing = client.post("/v1/reminders", headers=auth(keys.producer))
    assert missing.status_code == 422
    scalar = client.post("/v1/reminders", json=42, headers=auth(keys.producer))
    assert scalar.status_code == 422
    assert scalar.json()["status"] == "rejected"


def test_status_shows_each_channel_state(client: TestClient, keys: Keys, reminder: dict[str, Any]) -> None:
    client.post("/v1/reminders", json=reminder, headers=auth(keys.producer))
    response = client.get(f"/v1/reminders/{reminder['id']}", headers=auth(keys.producer))
    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == reminder["account_id"]
    assert body["category"] == "collection"
    assert body["cancelled_at"] is None
    assert [(d["channel"], d["state"], d["outcome"]) for d in body["deliveries"]] == [
        ("sms", "accepted", None),
        ("email", "accepted", None),
        ("push", "accepted", None),
    ]


def test_status_of_an_unknown_or_malformed_id(client: TestClient, keys: Keys) -> None:
    unknown = client.get(f"/v1/reminders/{fresh('never')}", headers=auth(keys.producer))
    assert unknown.status_code == 404
    assert "no reminder" in unknown.json()["detail"]
    malformed = client.get("/v1/reminders/-bad id", headers=auth(keys.producer))
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["path", "id"]


def test_cancel_says_what_was_cancelled(
    client: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis
) -> None:
    client.post("/v1/reminders", json=reminder, headers=auth(keys.producer))
    sms = f"{reminder['id']}:sms"
    rds.hset(f"herald:d:{sms}", mapping={"state": "sent", "outcome": "sent"})  # it went out already
    response = client.delete(f"/v1/reminders/{reminder['id']}", headers=auth(keys.producer))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cancelled"] == [f"{reminder['id']}:email", f"{reminder['id']}:push"]
    assert body["not_cancelled"] == [sms]
    status = client.get(f"/v1/reminders/{reminder['id']}", headers=auth(keys.producer)).json()
    assert status["cancelled_at"]
    assert {d["channel"]: d["outcome"] for d in status["deliveries"]} == {
        "sms": "sent",
        "email": "cancelled",
        "push": "cancelled",
    }
    again = client.delete(f"/v1/reminders/{reminder['id']}", headers=auth(keys.producer))
    assert again.json()["cancelled"] == body["cancelled"]


def test_cancel_of_an_unknown_reminder_is_404(client: TestClient, keys: Keys, rds: redis.Redis) -> None:
    never = fresh("never")
    response = client.delete(f"/v1/reminders/{never}", headers=auth(keys.producer))
    assert response.status_code == 404
    assert not rds.exists(f"herald:r:{never}")  # a cancel never creates the reminder it did not find
