"""AliyunSMSProvider against the Aliyun stand-in: no running herald system, only the provider.

Each test renders a real message with herald's Renderer from the repository's templates (every
kind's ``[sms.aliyun]``), sends it with ``provider.send`` to a FakeAliyunSMS that verifies the
signature as Aliyun documents it, and checks the error class herald's pipeline would act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from herald.channels.aliyun_sms import AliyunSMSProvider, classify, limit_wait, phone_numbers
from herald.channels.base import (
    AmbiguousError,
    Deferred,
    Message,
    PermanentError,
    ProviderDown,
    RetryableError,
    SendResult,
)
from herald.config import Settings
from herald.rendering.catalog import Catalog, load_catalog
from herald.rendering.renderer import Renderer
from tests.standins.aliyun import FakeAliyunSMS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
KINDS = ["overdue_notice", "repayment_due", "installment_due", "agreement_confirmed", "early_warning"]
TO = "+8613800138000"
SIGN = "赫拉德信贷"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(TEMPLATES)


@pytest.fixture
def fake() -> Iterator[FakeAliyunSMS]:
    with FakeAliyunSMS(sign_name=SIGN) as server:
        yield server


def settings_for(fake: FakeAliyunSMS, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "templates_dir": TEMPLATES,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": fake.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": fake.access_key_secret,
        "aliyun_sign_name": SIGN,
        "aliyun_sms_endpoint": fake.url,
        "connect_timeout": 2,
        "provider_timeout": 2,
    }
    values.update(overrides)
    return Settings(**values)


def send(fake: FakeAliyunSMS, sent: Message, **overrides: Any) -> SendResult:
    """``provider.send`` on a provider of its own (its session opened and closed on one loop)."""

    async def once() -> SendResult:
        sender = AliyunSMSProvider("sms", settings_for(fake, **overrides))
        try:
            return await sender.send(sent)
        finally:
            await sender.close()

    return asyncio.run(once())


def message(catalog: Catalog, kind: str = "overdue_notice", to: str = TO, key: str = "r-1:sms") -> Message:
    """A real rendered SMS of ``kind`` (its example data) with its approved Aliyun template."""
    renderer = Renderer(catalog, Settings(templates_dir=TEMPLATES))
    spec = catalog.get(kind)
    reminder_id = key.removesuffix(":sms")
    reminder: dict[str, Any] = {
        "id": reminder_id,
        "kind": kind,
        "account_id": "acct-1",
        "to": {"phone": to, "locale": "zh-CN", "timezone": "Asia/Shanghai"},
        "data": spec.example_data(date.today()),
    }
    rendered = renderer.render(kind, "sms", renderer.context(reminder, spec.category), approved=("aliyun",))
    return Message(key, reminder_id, "acct-1", kind, spec.category, "sms", to, rendered)


# -- accepted ----------------------------------------------------------------------------------


def test_a_message_is_signed_as_aliyun_verifies_and_its_biz_id_is_the_provider_ref(
    fake: FakeAliyunSMS, catalog: Catalog
) -> None:
    result = send(fake, message(catalog))
    [record] = fake.accepted
    assert result.provider_ref == record["biz_id"]
    assert result.provider_ref.endswith("^0")
    assert result.detail == {"request_id": record["request_id"]}
    assert (record["to"], record["phone_numbers"]) == (TO, "8613800138000")
    assert (record["sign_name"], record["out_id"]) == (SIGN, "r-1:sms")
    assert AliyunSMSProvider.receipts
    assert AliyunSMSProvider.approved_only


@pytest.mark.parametrize("kind", KINDS)
def test_template_param_carries_the_rendered_values_of_the_kinds_approved_template(
    fake: FakeAliyunSMS, catalog: Catalog, kind: str
) -> None:
    sent = message(catalog, kind)
    approved = sent.rendered.approved["aliyun"]
    send(fake, sent)
    [record] = fake.accepted
    assert record["template_code"] == approved.code == catalog.get(kind).approved["aliyun"].codes["zh-CN"]
    assert record["template_param"] == approved.params
    assert record["template_param"]["name"] == "李伟"


def test_a_long_delivery_key_is_sent_without_out_id(fake: FakeAliyunSMS, catalog: Catalog) -> None:
    send(fake, message(catalog, key="r" * 80 + ":sms"))
    assert fake.accepted[0]["out_id"] == ""


def test_three_hundred_sends_in_flight_are_all_accepted_with_unique_nonces(catalog: Catalog) -> None:
    sent = [message(catalog, to=f"+86138{i:08d}", key=f"r-{i}:sms") for i in range(300)]
    with FakeAliyunSMS(sign_name=SIGN, latency=0.2) as fake:

        async def burst() -> list[SendResult]:
            sender = AliyunSMSProvider("sms", settings_for(fake, in_flight=300))
            await sender.start()
            try:
                return await asyncio.gather(*(sender.send(m) for m in sent))
            finally:
                await sender.close()

        results = asyncio.run(burst())
        accepted = fake.wait_accepted(300)
        assert len(accepted) == 300
        assert len({r["nonce"] for r in accepted}) == 300
        assert {r.provider_ref for r in results} == {r["biz_id"] for r in accepted}
        assert fake.peak_in_flight > 100  # they really were out together


# -- refused for good --------------------------------------------------------------------------


def test_a_kind_without_an_approved_template_is_permanent_and_nothing_is_sent(
    fake: FakeAliyunSMS, catalog: Catalog
) -> None:
    sent = message(catalog)
    bare = replace(sent, rendered=replace(sent.rendered, approved={}))
    with pytest.raises(PermanentError, match="overdue_notice has no approved Aliyun template") as caught:
        send(fake, bare)
    assert caught.value.code == "no_template"
    assert fake.requests == 0


def test_an_illegal_number_is_permanent_and_its_reason_names_the_code(
    fake: FakeAliyunSMS, catalog: Catalog
) -> None:
    fake.block(TO)
    with pytest.raises(PermanentError) as caught:
        send(fake, message(catalog))
    assert caught.value.code == "isv.MOBILE_NUMBER_ILLEGAL"
    assert caught.value.reason() == "isv.MOBILE_NUMBER_ILLEGAL: 非法手机号"


def test_a_number_aliyun_would_read_as_a_mainland_mobile_is_refused_before_sending(
    fake: FakeAliyunSMS, catalog: Catalog
) -> None:
    with pytest.raises(PermanentError) as caught:
        send(fake, message(catalog, to="+14705550123"))
    assert caught.value.code == "ambiguous_number"
    assert fake.requests == 0
    assert phone_numbers("+442071838750") == "442071838750"
    assert phone_numbers("+85261234567") == "85261234567"


def test_a_signature_name_aliyun_has_not_approved_means_the_provider_is_down(
    fake: FakeAliyunSMS, catalog: Catalog
) -> None:
    # the signature is configuration: every message would be refused until someone fixes it
    with pytest.raises(ProviderDown) as caught:
        send(fake, message(catalog), aliyun_sign_name="别家公司")
    assert caught.value.code == "isv.SMS_SIGNATURE_ILLEGAL"


def test_a_template_aliyun_has_not_approved_is_permanent(catalog: Catalog) -> None:
    with FakeAliyunSMS(sign_name=SIGN, templates=["SMS_1"]) as fake, pytest.raises(PermanentError) as caught:
        send(fake, message(catalog))
    assert caught.value.code == "isv.SMS_TEMPLATE_ILLEGAL"


# -- a limit on the recipient ------------------------------------------------------------------


@pytest.mark.parametrize(("level", "wait"), [("minute", 60), ("hour", 3600), ("day", 86400)])
def test_the_carriers_frequency_control_defers_for_the_cap_its_message_names(
    fake: FakeAliyunSMS, catalog: Catalog, level: str, wait: float
) -> None:
    fake.limit(TO, level)
    with pytest.raises(Deferred) as caught:
        send(fake, message(catalog))
    assert not isinstance(caught.value, ProviderDown)
    assert (caught.value.code, caught.value.retry_after) == ("isv.BUSINESS_LIMIT_CONTROL", wait)


def test_a_limit_message_that_names_no_cap_waits_an_hour() -> None:
    assert limit_wait("触发业务流控") == 3600
    assert limit_wait("Delivery frequency exceeds the minute limit") == 60


# -- the provider is down ----------------------------------------------------------------------


def test_an_account_out_of_credit_is_provider_down(fake: FakeAliyunSMS, catalog: Catalog) -> None:
    fake.out_of_credit()
    with pytest.raises(ProviderDown) as caught:
        send(fake, message(catalog))
    assert caught.value.code == "isv.AMOUNT_NOT_ENOUGH"
    assert fake.accepted == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(None, "isv.OUT_OF_SERVICE"), (None, "isv.DAY_LIMIT_CONTROL"), (403, "Forbidden.RAM"), (403, None)],
)
def test_a_suspended_or_forbidden_account_is_provider_down(
    fake: FakeAliyunSMS, catalog: Catalog, status: int | None, code: str | None
) -> None:
    fake.fail_next(1, status, code=code)
    with pytest.raises(ProviderDown):
        send(fake, message(catalog))


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAInobody"}, "InvalidAccessKeyId.NotFound"),
    ],
)
def test_refused_credentials_are_provider_down(
    fake: FakeAliyunSMS, catalog: Catalog, override: dict[str, str], code: str
) -> None:
    with pytest.raises(ProviderDown) as caught:
        send(fake, message(catalog), **override)
    assert caught.value.code == code


# -- safe to retry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (None, "Throttling.User"),
        (None, "Throttling.Api"),
        (503, None),
        (429, None),
        (None, "SignatureNonceUsed"),
    ],
)
def test_throttling_and_unavailability_are_safe_to_retry(
    fake: FakeAliyunSMS, catalog: Catalog, status: int | None, code: str | None
) -> None:
    fake.fail_next(1, status, code=code)
    with pytest.raises(RetryableError) as caught:
        send(fake, message(catalog))
    assert not isinstance(caught.value, Deferred | ProviderDown)
    assert fake.accepted == []
    send(fake, message(catalog))
    assert len(fake.accepted) == 1


def test_a_stopped_aliyun_is_safe_to_retry(fake: FakeAliyunSMS, catalog: Catalog) -> None:
    fake.stop()
    with pytest.raises(RetryableError) as caught:
        send(fake, message(catalog))
    assert not isinstance(caught.value, Deferred | ProviderDown)
    assert caught.value.code == "connect"


# -- may have been sent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, None), (502, None), (504, None), (None, "isp.SYSTEM_ERROR"), (None, "InternalError")],
)
def test_server_errors_and_isp_codes_are_ambiguous(
    fake: FakeAliyunSMS, catalog: Catalog, status: int | None, code: str | None
) -> None:
    fake.fail_next(1, status, code=code)
    with pytest.raises(AmbiguousError):
        send(fake, message(catalog))


def test_a_read_timeout_after_sending_is_ambiguous_though_aliyun_has_the_message(
    fake: FakeAliyunSMS, catalog: Catalog
) -> None:
    fake.hang_next(1, 30)
    with pytest.raises(AmbiguousError) as caught:
        send(fake, message(catalog), provider_timeout=0.3)
    assert caught.value.code == "timeout"
    assert len(fake.accepted) == 1  # Aliyun has it: never send it again blindly


# -- configuration and classification ----------------------------------------------------------


def test_start_names_every_missing_setting() -> None:
    sender = AliyunSMSProvider("sms", Settings(templates_dir=TEMPLATES, ALIBABA_CLOUD_ACCESS_KEY_ID="LTAI1"))
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(sender.start())
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" not in str(caught.value)
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in str(caught.value)
    assert "HERALD_ALIYUN_SIGN_NAME" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (200, "isv.TEMPLATE_MISSING_PARAMETERS", PermanentError),
        (200, "isv.SOMETHING_NEW", PermanentError),
        (200, "isv.MONTH_LIMIT_CONTROL", ProviderDown),
        (200, "isp.RAM_PERMISSION_DENY", ProviderDown),
        (200, "isp.GATEWAY_ERROR", AmbiguousError),
        (400, "isv.BLACK_KEY_CONTROL_LIMIT", PermanentError),
        (400, "Throttling", RetryableError),
        (200, "isv.SOME_FLOW_CONTROL", RetryableError),
        (404, "InvalidAccessKeyId.Inactive", ProviderDown),
        (400, "MissingPhoneNumbers", PermanentError),
        (400, "MissingSignature", ProviderDown),
        (404, "InvalidAction.NotFound", ProviderDown),
        (401, "", ProviderDown),
        (500, "", AmbiguousError),
        (200, "", AmbiguousError),
    ],
)
def test_the_code_decides_before_the_status(status: int, code: str, cls: type[Exception]) -> None:
    assert type(classify(status, code, "message", {})) is cls


def test_throttling_honours_the_gateways_retry_after() -> None:
    throttled = classify(400, "Throttling.User", "slow down", {"x-acs-retry-after": "1500"})
    assert isinstance(throttled, RetryableError)
    assert throttled.retry_after == 1.5
    unavailable = classify(503, "", "", {"Retry-After": "7"})
    assert isinstance(unavailable, RetryableError)
    assert unavailable.retry_after == 7
