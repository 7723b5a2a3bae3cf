"""herald.models: the Reminder wire model, its canonical body and delivery keys."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from herald.models import CHANNELS, Reminder, delivery_key, split_delivery_key


def _reversed(obj: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(obj, dict):
        return {k: _reversed(obj[k]) for k in reversed(list(obj))}
    return obj


def test_wire_reminder_parses(wire: dict[str, Any]) -> None:
    reminder = Reminder.model_validate(wire)

    assert reminder.id == wire["id"]
    assert reminder.kind == "overdue_notice"
    assert reminder.channels == ["sms", "email", "push"]
    assert reminder.to.locale == "zh-CN"
    assert reminder.data == wire["data"]
    assert reminder.expires_at is not None
    assert reminder.expires_at.utcoffset() is not None


@pytest.mark.parametrize("spelling", ["+86 138 0013 8000", "+86-138-0013-8000", "+8613800138000"])
def test_phone_is_normalised_to_e164(wire: dict[str, Any], spelling: str) -> None:
    wire["to"]["phone"] = spelling

    assert Reminder.model_validate(wire).to.phone == "+8613800138000"


@pytest.mark.parametrize(
    ("given", "stored"), [("zh_CN", "zh-CN"), ("en-us", "en-US"), ("zh-Hant-TW", "zh-TW")]
)
def test_locale_is_normalised(wire: dict[str, Any], given: str, stored: str) -> None:
    wire["to"]["locale"] = given

    assert Reminder.model_validate(wire).to.locale == stored


def test_reminder_is_frozen(wire: dict[str, Any]) -> None:
    reminder = Reminder.model_validate(wire)

    with pytest.raises(ValidationError):
        reminder.kind = "early_warning"  # type: ignore[misc]


def test_canonical_is_stable_across_key_order(wire: dict[str, Any]) -> None:
    shuffled = _reversed(copy.deepcopy(wire))
    assert list(shuffled) != list(wire)

    assert Reminder.model_validate(shuffled).canonical() == Reminder.model_validate(wire).canonical()


def test_canonical_differs_when_data_differs(wire: dict[str, Any]) -> None:
    other = copy.deepcopy(wire)
    other["data"]["amount_due"] = "1234.51"

    assert Reminder.model_validate(other).canonical() != Reminder.model_validate(wire).canonical()


def test_canonical_sorts_keys_and_leaves_out_omitted_fields(wire: dict[str, Any]) -> None:
    del wire["not_before"]
    body = orjson.loads(Reminder.model_validate(wire).canonical())

    assert "not_before" not in body
    assert list(body) == sorted(body)
    assert list(body["to"]) == sorted(body["to"])


def test_canonical_uses_the_normalised_phone(wire: dict[str, Any]) -> None:
    spaced = copy.deepcopy(wire)
    spaced["to"]["phone"] = "+86 138 0013 8000"

    assert Reminder.model_validate(spaced).canonical() == Reminder.model_validate(wire).canonical()


@pytest.mark.parametrize("reminder_id", ["r1", "acct-1029-overdue-1", "acct:1029:overdue", "a.b@c_d"])
@pytest.mark.parametrize("channel", CHANNELS)
def test_delivery_key_round_trips(reminder_id: str, channel: str) -> None:
    key = delivery_key(reminder_id, channel)

    assert key == f"{reminder_id}:{channel}"
    assert split_delivery_key(key) == (reminder_id, channel)


@pytest.mark.parametrize(
    "key",
    ["", "sms", ":sms", "r1:", "r1:fax", "r1:SMS", "r1 :sms", "-r1:sms", "r1/x:email", "r1:sms:"],
)
def test_split_delivery_key_rejects_garbage(key: str) -> None:
    with pytest.raises(ValueError, match="not a delivery key"):
        split_delivery_key(key)
