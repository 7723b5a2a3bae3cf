"""herald.display.masking: personal data as it may appear in logs."""

from __future__ import annotations

import pytest

from herald.display.masking import mask_address, mask_email, mask_phone, mask_token, scrub


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+8613800138000", "+86138****8000"),
        ("+14155550123", "+14155****0123"),
        ("+4420", "+4***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(phone: str | None, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_masked_phone_hides_the_middle_digits() -> None:
    assert "0013" not in mask_phone("+8613800138000")


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("li.wei@example.cn", "l****@example.cn"),
        ("a@b.co", "a****@b.co"),
        ("not-an-address", "****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_email(email: str | None, masked: str) -> None:
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    ("token", "masked"),
    [
        ("sample-device-token-zh-0001", "samp…0001"),
        ("abcdefghijklm", "abcd…jklm"),
        ("abcdefghijkl", "****"),
        ("short", "****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_token(token: str | None, masked: str) -> None:
    assert mask_token(token) == masked


def test_mask_address_by_channel() -> None:
    assert mask_address("sms", "+8613800138000") == "+86138****8000"
    assert mask_address("email", "li.wei@example.cn") == "l****@example.cn"
    assert mask_address("push", ["sample-device-token-zh-0001", "tiny"]) == "samp…0001,****"
    assert mask_address("push", "sample-device-token-zh-0001") == "samp…0001"  # one token


@pytest.mark.parametrize(
    ("channel", "address"), [("sms", ["+8613800138000"]), ("email", None), ("push", None)]
)
def test_mask_address_of_the_wrong_shape_reveals_nothing(channel: str, address: list[str] | None) -> None:
    assert mask_address(channel, address) == ""


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("customer says 13800138000 is not hers", "customer says +86138****8000 is not hers"),
        ("call +86 138 0013 8000.", "call +86138****8000."),
        ("US number (415) 555-0123 on file", "US number +86415****0123 on file"),
        ("21610: +15005550006 unsubscribed", "21610: +15005****0006 unsubscribed"),
        ("mail 13800138000@qq.com", "mail 1****@qq.com"),
    ],
)
def test_scrub_masks_numbers_in_every_common_written_form(text: str, masked: str) -> None:
    assert scrub(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "amount 1234.50 due 2026-11-20, fee 12.00",
        "loan HL-2026-0001 instalment 4/12",
        "Twilio 30005: unknown destination",
        "call the service line 95188",
    ],
)
def test_scrub_leaves_amounts_dates_codes_and_service_lines_alone(text: str) -> None:
    assert scrub(text) == text
