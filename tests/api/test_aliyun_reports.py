"""Aliyun's delivery reports (SmsReport HTTP batch push) through the API, on a real redis-server.

Reminders are accepted through ``POST /v1/reminders``; a test then marks its SMS delivery sent
through Aliyun as the pipeline leaves it (outcome ``sent``, the BizId pointing back to it) and
pushes reports in the shape FakeAliyunSMS builds from Aliyun's documentation: in-process through
the TestClient, and once over real HTTP to a served app, as Aliyun would.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from herald.api.aliyun_hooks import REPORTS_PATH, HideReportToken
from herald.config import Settings
from herald.ops.embedded import free_port
from herald.state import store
from tests.api.conftest import Keys, auth, build_app
from tests.standins.aliyun import FakeAliyunSMS

TOKEN = "report-token-" + "x" * 20


@pytest.fixture(scope="module")
def reporting(settings: Settings) -> FastAPI:
    """The API with a report token configured."""
    return build_app(settings.model_copy(update={"aliyun_report_token": SecretStr(TOKEN)}))


@pytest.fixture(scope="module")
def api(reporting: FastAPI) -> Iterator[TestClient]:
    with TestClient(reporting, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def aliyun() -> FakeAliyunSMS:
    """Builds report batches (it is never started: reports name BizIds it did not issue)."""
    return FakeAliyunSMS()


def sent_through_aliyun(
    client: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis
) -> tuple[str, str]:
    """Accept ``reminder`` and mark its SMS sent through Aliyun; (delivery key, BizId)."""
    assert client.post("/v1/reminders", json=reminder, headers=auth(keys.producer)).status_code in (
        200,
        201,
        202,
    )
    key = f"{reminder['id']}:sms"
    biz_id = f"{secrets.randbelow(10**18)}^0"
    rds.hset(
        store.delivery_redis_key(key),
        mapping={"state": "sent", "outcome": "sent", "provider": "aliyun", "provider_ref": biz_id},
    )
    rds.set(store.provider_ref_key("aliyun", biz_id), key)
    return key, biz_id


def push(api: TestClient, body: Any, token: str | None = TOKEN) -> Any:
    params = {"token": token} if token is not None else {}
    return api.post(REPORTS_PATH, params=params, json=body)


def receipt_events(rds: redis.Redis, key: str) -> list[dict[str, str]]:
    entries: list[tuple[str, dict[str, str]]] = rds.xrange(store.EVENTS)  # type: ignore[assignment]
    return [fields for _, fields in entries if fields.get("key") == key and fields.get("receipt")]


# -- recorded ----------------------------------------------------------------------------------


def test_a_delivered_report_records_a_receipt_and_answers_as_aliyun_asks(
    api: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis, aliyun: FakeAliyunSMS
) -> None:
    key, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    response = push(api, aliyun.report_body([(biz_id, True, "")]))
    assert response.status_code == 200, response.text
    assert response.json() == {"code": 0, "msg": "接收成功", "recorded": 1, "unknown": 0, "not_sent": 0}
    delivery = rds.hgetall(store.delivery_redis_key(key))
    assert (delivery["receipt"], delivery["receipt_code"]) == ("delivered", "")
    [event] = receipt_events(rds, key)
    assert (event["receipt"], event["channel"], event["account_id"]) == (
        "delivered",
        "sms",
        reminder["account_id"],
    )


def test_an_undelivered_report_keeps_aliyuns_code_and_message_as_the_reason(
    api: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis, aliyun: FakeAliyunSMS
) -> None:
    key, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    assert push(api, aliyun.report_body([(biz_id, False, "MK:0001")])).json()["recorded"] == 1
    delivery = rds.hgetall(store.delivery_redis_key(key))
    assert (delivery["receipt"], delivery["receipt_code"]) == ("undelivered", "MK:0001 用户接收失败")


def test_a_reason_naming_a_phone_number_is_masked(
    api: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis
) -> None:
    key, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    body = [{"biz_id": biz_id, "success": False, "err_code": "UNDELIV", "err_msg": "13800138000 停机"}]
    assert push(api, body).status_code == 200
    code = str(rds.hget(store.delivery_redis_key(key), "receipt_code"))
    assert "13800138000" not in code
    assert code.startswith("UNDELIV ")


def test_a_batch_counts_unknown_biz_ids_and_deliveries_not_sent_and_is_still_received(
    api: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis, aliyun: FakeAliyunSMS
) -> None:
    _, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    other = {**reminder, "id": reminder["id"] + "-b"}
    other_key, other_biz = sent_through_aliyun(api, keys, other, rds)
    rds.hset(store.delivery_redis_key(other_key), mapping={"state": "done", "outcome": "in_doubt"})
    body = aliyun.report_body([(biz_id, True, ""), ("1^0", True, ""), (other_biz, False, "UNDELIV")])
    response = push(api, body)
    assert response.status_code == 200
    assert response.json() == {"code": 0, "msg": "接收成功", "recorded": 1, "unknown": 1, "not_sent": 1}
    assert "receipt" not in rds.hgetall(store.delivery_redis_key(other_key))


def test_a_report_pushed_again_is_recorded_again_harmlessly(
    api: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis, aliyun: FakeAliyunSMS
) -> None:
    key, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    for _ in range(2):
        assert push(api, aliyun.report_body([(biz_id, True, "")])).json()["recorded"] == 1
    assert rds.hget(store.delivery_redis_key(key), "receipt") == "delivered"


def test_an_empty_batch_is_received(api: TestClient) -> None:
    assert push(api, []).json()["code"] == 0


# -- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"])
def test_a_push_without_the_token_is_forbidden_and_records_nothing(
    api: TestClient,
    keys: Keys,
    reminder: dict[str, Any],
    rds: redis.Redis,
    aliyun: FakeAliyunSMS,
    token: str | None,
) -> None:
    key, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    response = push(api, aliyun.report_body([(biz_id, True, "")]), token=token)
    assert response.status_code == 403
    assert "receipt" not in rds.hgetall(store.delivery_redis_key(key))


def test_without_a_configured_token_the_route_is_not_found(client: TestClient, aliyun: FakeAliyunSMS) -> None:
    response = client.post(
        REPORTS_PATH, params={"token": TOKEN}, json=aliyun.report_body([("1^0", True, "")])
    )
    assert response.status_code == 404
    assert "HERALD_ALIYUN_REPORT_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "the body is not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"biz_id": "1^0", "success": true}', "must be a JSON array"),
        (b"[1]", "report 0: must be a JSON object"),
        (b'[{"success": true}]', "report 0: biz_id must be a non-empty string"),
        (b'[{"biz_id": "1^0", "success": "true"}]', "report 0: success must be true or false"),
        (
            b'[{"biz_id": "1^0", "success": true}, {"biz_id": "2^0", "success": false, "err_code": 5}]',
            "report 1: err_code",
        ),
    ],
)
def test_a_body_that_is_not_the_documented_array_is_a_400_naming_the_problem(
    api: TestClient, body: bytes, problem: str
) -> None:
    response = api.post(
        REPORTS_PATH, params={"token": TOKEN}, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert problem in response.json()["detail"]


def test_when_redis_fails_the_answer_is_5xx_so_aliyun_pushes_again(
    settings: Settings, aliyun: FakeAliyunSMS
) -> None:
    broken = settings.model_copy(
        update={"aliyun_report_token": SecretStr(TOKEN), "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    with TestClient(build_app(broken), raise_server_exceptions=False) as c:
        response = c.post(REPORTS_PATH, params={"token": TOKEN}, json=aliyun.report_body([("1^0", True, "")]))
    assert response.status_code == 503
    assert response.headers["Retry-After"]


# -- over real HTTP, as Aliyun pushes ----------------------------------------------------------


@pytest.fixture(scope="module")
def served(reporting: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free port; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(reporting, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="reports-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_stand_ins_push_is_recorded_and_counted_received(
    served: str, api: TestClient, keys: Keys, reminder: dict[str, Any], rds: redis.Redis
) -> None:
    key, biz_id = sent_through_aliyun(api, keys, reminder, rds)
    fake = FakeAliyunSMS()
    status = fake.push_reports(f"{served}{REPORTS_PATH}?token={TOKEN}", [(biz_id, False, "MK:0012")])
    assert status == 200
    assert fake.report_received()
    assert rds.hget(store.delivery_redis_key(key), "receipt") == "undelivered"
    assert fake.push_reports(f"{served}{REPORTS_PATH}?token=wrong", [(biz_id, True, "")]) == 403
    assert not fake.report_received()


def test_the_access_log_never_shows_the_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"{REPORTS_PATH}?token={TOKEN}", "1.1", 200), None,
    )  # fmt: skip
    assert HideReportToken().filter(record)
    assert TOKEN not in record.getMessage()
    assert f"{REPORTS_PATH}?token=" in record.getMessage()
    assert any(isinstance(f, HideReportToken) for f in logging.getLogger("uvicorn.access").filters)
