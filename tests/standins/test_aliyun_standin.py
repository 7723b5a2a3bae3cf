"""FakeAliyunSMS driven by raw signed HTTP and by a report receiver.

What matters is that the stand-in answers as Aliyun answers: it verifies the signature exactly
as Aliyun's documentation computes it (the documented examples below), refuses what the gateway
and the SMS service refuse with their codes and HTTP statuses, and pushes reports in the
documented SmsReport shape.

No OpenAPI or metadata description of Dysmsapi 2017-05-25 is published where these tests can
read it. So the request and answer fields are checked against the names the official SDK
(``alibabacloud-dysmsapi20170525`` 4.6.0: ``SendSmsRequest.to_map`` and ``SendSmsResponseBody``)
gives them, as listed in ``tests.standins.aliyun``. ``bench/aliyun_client.py`` runs the SDK's own
client against the stand-in where the SDK is installed (it is not among herald's dependencies):
the stand-in accepts the SDK's signatures. The report fields are those of Aliyun's SmsReport
(HTTP batch push) reference.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from herald.channels.aliyun_sms import canonical_query, rpc_signature
from tests.standins.aliyun import (
    ANSWER_FIELDS,
    CHINA,
    REPORT_FIELDS,
    REQUEST_FIELDS,
    FakeAliyunSMS,
    expected_signature,
    normalize_number,
    string_to_sign,
)
from tests.standins.base import serve_while

TO = "+8613800138000"
SIGN = "赫拉德信贷"

# Aliyun's own worked examples of the RPC signature (the SMS guide's SendSms, and the general
# signature guide's DescribeRegions), both signed for GET.
DOC_SEND_SMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
DOC_SEND_SMS_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="
DOC_DESCRIBE_REGIONS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
DOC_DESCRIBE_REGIONS_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


@pytest.fixture
def fake() -> Iterator[FakeAliyunSMS]:
    with FakeAliyunSMS(sign_name=SIGN) as server:
        yield server


def params(fake: FakeAliyunSMS, **overrides: str | None) -> dict[str, str]:
    """A complete, valid SendSms request for ``fake`` (before signing); None drops a parameter."""
    base: dict[str, str | None] = {
        "AccessKeyId": fake.access_key_id,
        "Action": "SendSms",
        "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        "PhoneNumbers": TO.lstrip("+"),
        "SignName": SIGN,
        "TemplateCode": "SMS_480210041",
        "TemplateParam": json.dumps({"name": "李伟", "amount": "¥2,490.72"}, ensure_ascii=False),
        "OutId": "r-1:sms",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def call(
    fake: FakeAliyunSMS,
    request_params: dict[str, str],
    *,
    secret: str | None = None,
    in_query: bool = False,
    method: str = "POST",
    signature: str | None = None,
    timeout: float = 10,
) -> tuple[int, str, Any]:
    """Sign and send; returns (status, content type, decoded body: JSON, or text)."""
    sig = signature or rpc_signature(method, request_params, secret or fake.access_key_secret)
    encoded = f"{canonical_query(request_params)}&Signature={urllib.parse.quote(sig, safe='')}"
    url, data = (f"{fake.url}/?{encoded}", None) if in_query else (f"{fake.url}/", encoded.encode())
    headers = {} if in_query else {"Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, kind, raw = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        status, kind, raw = error.code, error.headers["Content-Type"], error.read()
    text = raw.decode()
    return status, kind, (json.loads(text) if kind.startswith("application/json") else text)


# -- the signature -----------------------------------------------------------------------------


def test_the_documented_signature_examples_come_out_of_both_implementations() -> None:
    assert expected_signature("GET", DOC_SEND_SMS, "testSecret") == DOC_SEND_SMS_SIGNATURE
    assert rpc_signature("GET", DOC_SEND_SMS, "testSecret") == DOC_SEND_SMS_SIGNATURE
    assert expected_signature("GET", DOC_DESCRIBE_REGIONS, "testsecret") == DOC_DESCRIBE_REGIONS_SIGNATURE
    assert rpc_signature("GET", DOC_DESCRIBE_REGIONS, "testsecret") == DOC_DESCRIBE_REGIONS_SIGNATURE


def test_the_string_to_sign_encodes_the_canonical_query_a_second_time() -> None:
    text = string_to_sign("GET", DOC_SEND_SMS)
    assert text.startswith("GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26")
    assert "SignName%3D%25E9%2598%25BF" in text  # UTF-8, encoded once, then again
    assert "TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D" in text
    assert "Timestamp%3D2017-07-12T02%253A42%253A19Z" in text


# -- success -----------------------------------------------------------------------------------


def test_a_signed_post_with_the_parameters_in_the_body_is_accepted_and_recorded(fake: FakeAliyunSMS) -> None:
    sent = params(fake)
    status, kind, body = call(fake, sent)
    assert (status, kind.split(";")[0]) == (200, "application/json")
    assert set(body) == ANSWER_FIELDS
    assert (body["Code"], body["Message"]) == ("OK", "OK")
    digits, caret, index = body["BizId"].partition("^")
    assert digits.isdigit()
    assert (caret, index) == ("^", "0")
    assert uuid.UUID(body["RequestId"])
    [record] = fake.accepted
    assert record["biz_id"] == body["BizId"]
    assert record["to"] == TO
    assert record["phone_numbers"] == "8613800138000"
    assert (record["sign_name"], record["template_code"], record["out_id"]) == (
        SIGN,
        "SMS_480210041",
        "r-1:sms",
    )
    assert record["template_param"] == {"name": "李伟", "amount": "¥2,490.72"}
    assert record["nonce"] == sent["SignatureNonce"]
    assert fake.message(body["BizId"]) == record
    assert fake.accepted_to("13800138000") == [record]
    assert fake.requests == 1


def test_parameters_in_the_query_string_are_accepted_as_the_sdk_sends_them(fake: FakeAliyunSMS) -> None:
    status, _, body = call(fake, params(fake, Format="json"), in_query=True)
    assert (status, body["Code"]) == (200, "OK")


def test_without_format_json_the_answer_is_xml_as_aliyun_defaults(fake: FakeAliyunSMS) -> None:
    status, kind, body = call(fake, params(fake, Format=None))
    assert status == 200
    assert kind.startswith("text/xml")
    assert "<SendSmsResponse>" in body
    assert "<Code>OK</Code>" in body
    assert "<BizId>" in body


@pytest.mark.parametrize(
    ("number", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("+13800138000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("85261234567", "+85261234567"),
        ("442071838750", "+442071838750"),
        ("14705550123", "+8614705550123"),  # NANP digits read as a mainland mobile
    ],
)
def test_every_documented_number_form_is_accepted(fake: FakeAliyunSMS, number: str, e164: str) -> None:
    status, _, body = call(fake, params(fake, PhoneNumbers=number))
    assert (status, body["Code"]) == (200, "OK")
    assert fake.accepted[-1]["to"] == e164


@pytest.mark.parametrize(
    "number", ["", "12345", "8612345678", "+86 138 0013 8000", "1380013800a", "0138001380"]
)
def test_a_number_in_none_of_the_documented_forms_is_illegal(fake: FakeAliyunSMS, number: str) -> None:
    assert normalize_number(number) is None
    status, _, body = call(fake, params(fake, PhoneNumbers=number or None))
    if number:
        assert (status, body["Code"]) == (200, "isv.MOBILE_NUMBER_ILLEGAL")
    else:
        assert (status, body["Code"]) == (400, "MissingPhoneNumbers")
    assert fake.accepted == []


# -- the gateway's refusals ---------------------------------------------------------------------


def test_a_wrong_secret_is_refused_with_the_string_the_server_signed(fake: FakeAliyunSMS) -> None:
    sent = params(fake)
    status, _, body = call(fake, sent, secret="not-the-secret")
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert body["Message"].endswith(string_to_sign("POST", sent))
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert fake.accepted == []


def test_a_signature_for_another_method_does_not_match(fake: FakeAliyunSMS) -> None:
    sent = params(fake)
    status, _, body = call(fake, sent, signature=rpc_signature("GET", sent, fake.access_key_secret))
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")


def test_an_unknown_access_key_is_not_found(fake: FakeAliyunSMS) -> None:
    status, _, body = call(fake, params(fake, AccessKeyId="LTAInobody"))
    assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound")


def test_a_nonce_is_used_once(fake: FakeAliyunSMS) -> None:
    nonce = uuid.uuid4().hex
    assert call(fake, params(fake, SignatureNonce=nonce))[2]["Code"] == "OK"
    status, _, body = call(fake, params(fake, SignatureNonce=nonce))
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    assert len(fake.accepted) == 1


@pytest.mark.parametrize("minutes", [-16, 16])
def test_a_timestamp_more_than_fifteen_minutes_off_has_expired(fake: FakeAliyunSMS, minutes: int) -> None:
    stamp = (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, _, body = call(fake, params(fake, Timestamp=stamp))
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_a_timestamp_that_is_not_iso_8601_utc_is_malformed(fake: FakeAliyunSMS) -> None:
    status, _, body = call(fake, params(fake, Timestamp=datetime.now(UTC).isoformat()))
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Format")


@pytest.mark.parametrize(
    ("override", "status", "code"),
    [
        ({"SignatureNonce": None}, 400, "MissingSignatureNonce"),
        ({"AccessKeyId": None}, 400, "MissingAccessKeyId"),
        ({"Action": "SendBatchSms"}, 404, "InvalidAction.NotFound"),
        ({"Version": "2018-05-01"}, 400, "InvalidVersion"),
        ({"SignatureMethod": "HMAC-SHA256"}, 400, "InvalidSignatureMethod"),
        ({"SignatureVersion": "2.0"}, 400, "IncompleteSignature"),
        ({"SignName": None}, 400, "MissingSignName"),
        ({"TemplateCode": None}, 400, "MissingTemplateCode"),
    ],
)
def test_missing_or_wrong_common_parameters_are_refused_by_the_gateway(
    fake: FakeAliyunSMS, override: dict[str, str | None], status: int, code: str
) -> None:
    answer = call(fake, params(fake, **override))
    assert (answer[0], answer[2]["Code"]) == (status, code)
    assert fake.accepted == []


# -- the SMS service's refusals (HTTP 200 with a Code) ------------------------------------------


def test_only_the_approved_signature_may_sign(fake: FakeAliyunSMS) -> None:
    status, _, body = call(fake, params(fake, SignName="别家公司"))
    assert (status, body["Code"]) == (200, "isv.SMS_SIGNATURE_ILLEGAL")
    assert set(body) <= ANSWER_FIELDS
    assert "BizId" not in body


def test_template_codes_are_checked_against_the_approved_ones() -> None:
    with FakeAliyunSMS(templates={"SMS_1": ["name"]}) as fake:
        ok = call(
            fake, params(fake, SignName=fake.sign_name, TemplateCode="SMS_1", TemplateParam='{"name":"李伟"}')
        )
        assert ok[2]["Code"] == "OK"
        other = call(fake, params(fake, SignName=fake.sign_name, TemplateCode="SMS_2"))
        assert other[2]["Code"] == "isv.SMS_TEMPLATE_ILLEGAL"
        missing = call(fake, params(fake, SignName=fake.sign_name, TemplateCode="SMS_1", TemplateParam="{}"))
        assert missing[2]["Code"] == "isv.TEMPLATE_MISSING_PARAMETERS"


def test_without_a_list_any_sms_code_is_an_approved_template(fake: FakeAliyunSMS) -> None:
    assert call(fake, params(fake, TemplateCode="SMS_999"))[2]["Code"] == "OK"
    assert call(fake, params(fake, TemplateCode="TPL_1"))[2]["Code"] == "isv.SMS_TEMPLATE_ILLEGAL"


@pytest.mark.parametrize("value", ["not json", "[1, 2]", '{"n": 1}', '{"n": null}'])
def test_template_param_must_be_a_json_object_of_strings(fake: FakeAliyunSMS, value: str) -> None:
    assert call(fake, params(fake, TemplateParam=value))[2]["Code"] == "isv.INVALID_JSON_PARAM"


def test_a_value_is_at_most_35_characters(fake: FakeAliyunSMS) -> None:
    assert call(fake, params(fake, TemplateParam=json.dumps({"n": "还" * 35})))[2]["Code"] == "OK"
    status, _, body = call(fake, params(fake, TemplateParam=json.dumps({"n": "还" * 36})))
    assert (status, body["Code"]) == (200, "isv.PARAM_LENGTH_LIMIT")


def test_more_than_a_thousand_numbers_is_over_the_limit(fake: FakeAliyunSMS) -> None:
    numbers = ",".join(f"1380013{i:04d}" for i in range(1001))
    assert call(fake, params(fake, PhoneNumbers=numbers))[2]["Code"] == "isv.MOBILE_COUNT_OVER_LIMIT"


def test_a_blocked_number_is_illegal_until_unblocked(fake: FakeAliyunSMS) -> None:
    fake.block(TO)
    assert call(fake, params(fake))[2]["Code"] == "isv.MOBILE_NUMBER_ILLEGAL"
    fake.unblock("13800138000")
    assert call(fake, params(fake))[2]["Code"] == "OK"


@pytest.mark.parametrize(
    ("level", "message"),
    [
        ("minute", "触发分钟级流控Permits:1"),
        ("hour", "触发小时级流控Permits:5"),
        ("day", "触发天级流控Permits:10"),
    ],
)
def test_a_limited_number_meets_the_carriers_frequency_control(
    fake: FakeAliyunSMS, level: str, message: str
) -> None:
    fake.limit(TO, level)
    status, _, body = call(fake, params(fake))
    assert (status, body["Code"], body["Message"]) == (200, "isv.BUSINESS_LIMIT_CONTROL", message)
    assert call(fake, params(fake, PhoneNumbers="13800138001"))[2]["Code"] == "OK"
    fake.unlimit(TO)
    assert call(fake, params(fake))[2]["Code"] == "OK"


def test_an_account_out_of_credit_refuses_every_send(fake: FakeAliyunSMS) -> None:
    fake.out_of_credit()
    for _ in range(2):
        status, _, body = call(fake, params(fake))
        assert (status, body["Code"], body["Message"]) == (200, "isv.AMOUNT_NOT_ENOUGH", "账户余额不足")
    fake.out_of_credit(False)
    assert call(fake, params(fake))[2]["Code"] == "OK"


# -- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "answer_status", "answer_code"),
    [
        (None, "Throttling.User", 400, "Throttling.User"),
        (None, "isp.SYSTEM_ERROR", 200, "isp.SYSTEM_ERROR"),
        (None, "isv.OUT_OF_SERVICE", 200, "isv.OUT_OF_SERVICE"),
        (500, None, 500, "InternalError"),
        (503, None, 503, "ServiceUnavailable"),
        (429, None, 429, "Throttling.User"),
        (403, "Forbidden.RAM", 403, "Forbidden.RAM"),
    ],
)
def test_fail_next_answers_with_the_documented_status_for_its_code(
    fake: FakeAliyunSMS, status: int | None, code: str | None, answer_status: int, answer_code: str
) -> None:
    fake.fail_next(1, status, code=code)
    got = call(fake, params(fake))
    assert (got[0], got[2]["Code"]) == (answer_status, answer_code)
    assert fake.accepted == []
    assert call(fake, params(fake))[2]["Code"] == "OK"


@pytest.mark.parametrize("status", [502, 504])
def test_a_502_or_504_is_the_load_balancers_html_page(fake: FakeAliyunSMS, status: int) -> None:
    fake.fail_next(1, status)
    got_status, kind, body = call(fake, params(fake))
    assert (got_status, kind.split(";")[0]) == (status, "text/html")
    assert "<html>" in body


def test_faults_apply_only_to_authenticated_requests(fake: FakeAliyunSMS) -> None:
    fake.fail_next(1, 503)
    assert call(fake, params(fake), secret="wrong")[2]["Code"] == "SignatureDoesNotMatch"
    assert call(fake, params(fake))[0] == 503


def test_an_outage_lasts_until_lifted(fake: FakeAliyunSMS) -> None:
    fake.set_outage(503)
    assert [call(fake, params(fake))[0] for _ in range(3)] == [503, 503, 503]
    fake.set_outage(code="isv.OUT_OF_SERVICE")
    assert call(fake, params(fake))[2]["Code"] == "isv.OUT_OF_SERVICE"
    fake.set_outage(None)
    assert call(fake, params(fake))[2]["Code"] == "OK"
    assert fake.requests == 5


def test_a_hung_answer_times_out_after_the_message_was_accepted(fake: FakeAliyunSMS) -> None:
    fake.hang_next(1, 30)
    with pytest.raises(TimeoutError):
        call(fake, params(fake), timeout=0.3)
    [record] = fake.accepted
    assert record["held_back"] == 30
    assert fake.in_flight == 1
    assert call(fake, params(fake))[2]["Code"] == "OK"


def test_hang_all_holds_every_answer_until_lifted(fake: FakeAliyunSMS) -> None:
    fake.hang_all(30)
    for number in ("13800138000", "13800138001"):
        with pytest.raises(TimeoutError):
            call(fake, params(fake, PhoneNumbers=number), timeout=0.3)
    assert fake.peak_in_flight == 2
    fake.hang_all(None)
    assert call(fake, params(fake))[2]["Code"] == "OK"
    assert [r["held_back"] for r in fake.accepted] == [30, 30, 0]


def test_hundreds_of_concurrent_requests_are_each_accepted_once() -> None:
    with FakeAliyunSMS(sign_name=SIGN, latency=0.05) as fake:

        async def burst() -> list[int]:
            import aiohttp

            async with aiohttp.ClientSession() as session:

                async def one(i: int) -> int:
                    sent = params(fake, PhoneNumbers=f"1380013{i:04d}")
                    sig = rpc_signature("POST", sent, fake.access_key_secret)
                    data = f"{canonical_query(sent)}&Signature={urllib.parse.quote(sig, safe='')}"
                    headers = {"Content-Type": "application/x-www-form-urlencoded"}
                    async with session.post(fake.url + "/", data=data, headers=headers) as response:
                        return response.status

                return await asyncio.gather(*(one(i) for i in range(300)))

        assert asyncio.run(burst()) == [200] * 300
        assert len({r["biz_id"] for r in fake.wait_accepted(300)}) == 300
        assert fake.peak_in_flight > 1


def test_reset_forgets_and_a_restart_keeps_the_port(fake: FakeAliyunSMS) -> None:
    call(fake, params(fake))
    fake.block(TO)
    fake.out_of_credit()
    fake.reset()
    assert (fake.accepted, fake.requests) == ([], 0)
    url = fake.url
    fake.stop()
    fake.start()
    assert fake.url == url
    assert call(fake, params(fake))[2]["Code"] == "OK"


# -- field names against the official SDK ------------------------------------------------------


def test_the_request_parameters_are_the_sdks_plus_the_common_ones(fake: FakeAliyunSMS) -> None:
    common = {
        "AccessKeyId",
        "Action",
        "Format",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "Version",
    }
    assert set(params(fake)) <= REQUEST_FIELDS | common


# -- delivery reports --------------------------------------------------------------------------


class Receiver:
    """A report endpoint that answers as Aliyun asks, or with ``answer`` when given."""

    def __init__(self, answer: tuple[int, str] | None = None) -> None:
        self.answer = answer
        self.received: list[tuple[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.headers["Content-Type"], json.loads(await request.read())))
        if self.answer is not None:
            return web.Response(status=self.answer[0], text=self.answer[1], content_type="application/json")
        return web.json_response({"code": 0, "msg": "接收成功"})


def with_receiver(receiver: Receiver, action: Any) -> Any:
    """Serve ``receiver`` while ``action(url)`` runs in a worker thread."""

    def run(base: str) -> Any:
        receiver.url = f"{base}/reports"
        return action(receiver.url)

    return serve_while("/reports", receiver.handle, run)


def test_push_reports_posts_the_documented_array(fake: FakeAliyunSMS) -> None:
    before = time.time()
    biz_id = call(fake, params(fake))[2]["BizId"]
    receiver = Receiver()
    status = with_receiver(
        receiver,
        lambda url: fake.push_reports(
            url, [(biz_id, True, ""), (biz_id, False, "MK:0001"), ("1^0", False, "")]
        ),
    )
    assert status == 200
    assert fake.report_received()
    [(content_type, body)] = receiver.received
    assert content_type.startswith("application/json")
    delivered, failed, unknown = body
    assert list(delivered) == list(REPORT_FIELDS)
    assert delivered | {"send_time": "", "report_time": ""} == {
        "phone_number": "13800138000",
        "send_time": "",
        "report_time": "",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": biz_id,
        "out_id": "r-1:sms",
    }
    for name in ("send_time", "report_time"):  # wall-clock times in China, to the second
        moment = datetime.strptime(delivered[name], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
        assert before - 1 <= moment.timestamp() <= time.time()
    assert (failed["success"], failed["err_code"], failed["err_msg"]) == (False, "MK:0001", "用户接收失败")
    assert (unknown["biz_id"], unknown["phone_number"], unknown["out_id"]) == ("1^0", "", "")


@pytest.mark.parametrize(
    ("answer", "received"),
    [
        ((200, '{"code": 0, "msg": "ok"}'), True),
        ((200, '{"code": "0"}'), False),
        ((500, '{"code": 0}'), False),
    ],
)
def test_a_push_counts_as_received_only_on_200_with_a_numeric_code(
    fake: FakeAliyunSMS, answer: tuple[int, str], received: bool
) -> None:
    status = with_receiver(Receiver(answer), lambda url: fake.push_reports(url, [("1^0", True, "")]))
    assert status == answer[0]
    assert fake.report_received() is received
