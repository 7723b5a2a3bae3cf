"""Push tokens name their service: ``apns:<hex>`` is an APNs device token, anything else (with or
without ``fcm:``) an FCM registration token. Intake checks the APNs form and stores one spelling
of it; every token valid before the prefixes existed stays valid."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from herald.channels.push_tokens import service_of
from herald.intake.validation import ReminderInvalid, parse_reminder
from herald.models import Recipient, Reminder
from herald.rendering.catalog import Catalog

APNS_HEX = "0f" * 32  # 64 hexadecimal digits, the length APNs issues today


def tokens_of(*tokens: str) -> list[str]:
    return Recipient(push_tokens=list(tokens)).push_tokens


@pytest.mark.parametrize(
    "token",
    [
        "device-token-0001",
        "unregistered-abc",
        "dGVzdA:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx_ABC-xyz",  # the shape of an FCM token
        "APNS:not-the-prefix",  # the prefix is lower case; this one is an FCM token as before
        "apns-like-but-no-colon",
        "x",
    ],
)
def test_tokens_valid_before_the_prefixes_stay_valid_and_unchanged(token: str) -> None:
    assert tokens_of(token) == [token]


@pytest.mark.parametrize("token", ["fcm:dGVzdA:APA91bHun4MxP5egoKMwt2KZ", "fcm:x"])
def test_an_fcm_prefix_is_kept_as_given(token: str) -> None:
    assert tokens_of(token) == [token]


def test_an_fcm_prefix_with_nothing_after_it_is_refused() -> None:
    with pytest.raises(ValidationError, match="FCM token"):
        tokens_of("fcm:")


@pytest.mark.parametrize("digits", [64, 100, 200])
def test_an_apns_token_of_64_to_200_hex_digits_is_accepted(digits: int) -> None:
    token = "apns:" + ("ab" * 100)[:digits]
    assert tokens_of(token) == [token]


def test_an_apns_token_is_stored_in_lower_case_so_opt_outs_match() -> None:
    assert tokens_of("apns:" + APNS_HEX.upper()) == ["apns:" + APNS_HEX]


@pytest.mark.parametrize(
    ("after_prefix", "says"),
    [
        ("", "0 hexadecimal digits"),
        ("ab" * 31 + "a", "63 hexadecimal digits"),
        ("a" * 201, "201 hexadecimal digits"),
        ("g" + APNS_HEX[1:], "other characters than hexadecimal digits"),
        (APNS_HEX[:32] + "-" + APNS_HEX[32:], "other characters than hexadecimal digits"),
        ("<" + APNS_HEX + ">", "other characters than hexadecimal digits"),
    ],
    ids=["empty", "too-short", "too-long", "not-hex", "dashed", "bracketed"],
)
def test_a_malformed_apns_token_is_refused_saying_why(after_prefix: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        tokens_of("apns:" + after_prefix)
    message = str(info.value)
    assert "APNs token" in message
    assert says in message
    assert "64 to 200 hexadecimal digits" in message


def test_intake_names_the_field_of_a_malformed_apns_token(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    wire["to"]["push_tokens"] = ["device-token-0001", "apns:" + APNS_HEX[:-1]]

    with pytest.raises(ReminderInvalid) as info:
        parse_reminder(wire, catalog, now)

    (error,) = info.value.errors
    assert error.field == "to.push_tokens[1]"
    assert error.message.startswith("is an APNs token (apns:) with 63 hexadecimal digits")


def test_intake_accepts_a_recipient_with_both_services(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    wire["to"]["push_tokens"] = ["fcm:android-token", "apns:" + APNS_HEX.upper(), "legacy-android-token"]

    reminder = parse_reminder(wire, catalog, now)

    assert reminder.to.push_tokens == ["fcm:android-token", "apns:" + APNS_HEX, "legacy-android-token"]
    assert ("apns:" + APNS_HEX).encode() in reminder.canonical()  # what is stored and hashed


def test_the_same_reminder_with_either_case_of_a_token_is_one_body(wire: dict[str, Any]) -> None:
    lower, upper = dict(wire), dict(wire)
    lower["to"] = {**wire["to"], "push_tokens": ["apns:" + APNS_HEX]}
    upper["to"] = {**wire["to"], "push_tokens": ["apns:" + APNS_HEX.upper()]}
    assert Reminder.model_validate(lower).canonical() == Reminder.model_validate(upper).canonical()


@pytest.mark.parametrize(
    ("token", "service"),
    [
        ("apns:" + APNS_HEX, "apns"),
        ("fcm:android-token", "fcm"),
        ("android-token", "fcm"),
        ("APNS:" + APNS_HEX, "fcm"),
    ],
)
def test_service_of_reads_the_prefix(token: str, service: str) -> None:
    assert service_of(token) == service
