"""herald.intake.validation.parse_reminder: every bad field reported by its dotted name."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.intake.validation import FieldError, ReminderInvalid, parse_reminder
from herald.models import MAX_DATA_BYTES, Reminder
from herald.rendering.catalog import Catalog, load_catalog

DROP = object()


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj[part]
    if value is DROP:
        del obj[last]
    else:
        obj[last] = value


def _errors(raw: Any, catalog: Catalog, now: datetime) -> list[FieldError]:
    with pytest.raises(ReminderInvalid) as info:
        parse_reminder(raw, catalog, now)
    return info.value.errors


def test_wire_reminder_is_accepted(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    wire["to"]["phone"] = "+86 138 0013 8000"

    reminder = parse_reminder(wire, catalog, now)

    assert isinstance(reminder, Reminder)
    assert reminder.to.phone == "+8613800138000"


def test_times_may_be_omitted(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    del wire["not_before"], wire["expires_at"]

    reminder = parse_reminder(wire, catalog, now)

    assert reminder.not_before is None
    assert reminder.expires_at is None


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        pytest.param("id", "acct 1029", "id", id="id-with-space"),
        pytest.param("id", "a" * 129, "id", id="id-too-long"),
        pytest.param("id", "-acct", "id", id="id-leading-dash"),
        pytest.param("account_id", "", "account_id", id="account-empty"),
        pytest.param("account_id", "acct/1029", "account_id", id="account-slash"),
        pytest.param("to.phone", "8613800138000", "to.phone", id="phone-without-plus"),
        pytest.param("to.phone", "+86123", "to.phone", id="phone-too-short"),
        pytest.param("to.phone", "+86 call me", "to.phone", id="phone-not-a-number"),
        pytest.param("to.email", "li.wei.example.cn", "to.email", id="email"),
        pytest.param("to.timezone", "Asia/Beijing", "to.timezone", id="timezone"),
        pytest.param("to.locale", "xx-YY", "to.locale", id="locale"),
        pytest.param("priority", "high", "priority", id="unknown-top-level"),
        pytest.param("category", "transactional", "category", id="category"),
        pytest.param("to.fax", "+8613800138000", "to.fax", id="unknown-in-to"),
        pytest.param("kind", "overdue_notices", "kind", id="unknown-kind"),
        pytest.param("kind", "Overdue-Notice", "kind", id="malformed-kind"),
        pytest.param("channels", [], "channels", id="no-channels"),
        pytest.param("channels", ["sms", "email", "sms"], "channels", id="duplicate-channel"),
        pytest.param("channels", ["sms", "fax"], "channels[1]", id="unknown-channel"),
        pytest.param("to.phone", DROP, "to.phone", id="sms-without-phone"),
        pytest.param("to.email", None, "to.email", id="email-without-address"),
        pytest.param("to.push_tokens", [], "to.push_tokens", id="push-without-tokens"),
        pytest.param("data", {"note": "x" * MAX_DATA_BYTES}, "data", id="data-over-16k"),
    ],
)
def test_bad_field_is_reported_by_name(
    wire: dict[str, Any], catalog: Catalog, now: datetime, path: str, value: Any, field: str
) -> None:
    _set(wire, path, value)

    assert [e.field for e in _errors(wire, catalog, now)] == [field]


def test_category_is_rejected_as_not_a_field(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    wire["category"] = "transactional"

    assert _errors(wire, catalog, now) == [FieldError("category", "is not a known field")]


def test_phone_without_plus_explains_e164(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    wire["to"]["phone"] = "13800138000"

    (error,) = _errors(wire, catalog, now)
    assert "E.164" in error.message


def test_id_of_exactly_128_characters_is_accepted(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    wire["id"] = "a" * 128

    assert parse_reminder(wire, catalog, now).id == "a" * 128


def test_data_limit_is_16_kib_of_encoded_json(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    fields = wire["data"]  # what the templates need, plus a note that fills the rest
    envelope = len(orjson.dumps({**fields, "note": ""}))
    wire["data"] = {**fields, "note": "x" * (MAX_DATA_BYTES - envelope)}
    assert parse_reminder(wire, catalog, now).data == wire["data"]

    wire["data"] = {**fields, "note": "x" * (MAX_DATA_BYTES - envelope + 1)}
    (error,) = _errors(wire, catalog, now)
    assert error.field == "data"
    assert str(MAX_DATA_BYTES) in error.message


@pytest.mark.parametrize("field", ["not_before", "expires_at"])
def test_naive_datetime_is_rejected(
    wire: dict[str, Any], catalog: Catalog, now: datetime, field: str
) -> None:
    wire[field] = (now + timedelta(hours=3)).replace(tzinfo=None).isoformat()

    assert [e.field for e in _errors(wire, catalog, now)] == [field]


def test_expires_at_in_the_past(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    del wire["not_before"]
    wire["expires_at"] = (now - timedelta(minutes=1)).isoformat()

    (error,) = _errors(wire, catalog, now)
    assert error.field == "expires_at"
    assert "past" in error.message


@pytest.mark.parametrize("gap", [timedelta(hours=-1), timedelta(0)])
def test_expires_at_not_after_not_before(
    wire: dict[str, Any], catalog: Catalog, now: datetime, gap: timedelta
) -> None:
    wire["not_before"] = (now + timedelta(days=2)).isoformat()
    wire["expires_at"] = (now + timedelta(days=2) + gap).isoformat()

    (error,) = _errors(wire, catalog, now)
    assert error.field == "expires_at"
    assert "not_before" in error.message


def test_every_field_error_is_reported(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    wire["id"] = "has space"
    wire["to"]["email"] = "nope"
    wire["to"]["timezone"] = "Nowhere/City"
    wire["priority"] = 1
    wire["kind"] = "no_such_kind"
    del wire["to"]["phone"]

    errors = _errors(wire, catalog, now)

    assert {e.field for e in errors} == {"id", "to.email", "to.timezone", "priority", "kind", "to.phone"}


def test_every_cross_field_error_is_reported(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    del wire["to"]["phone"], wire["to"]["email"], wire["not_before"]
    wire["expires_at"] = (now - timedelta(hours=1)).isoformat()

    errors = _errors(wire, catalog, now)

    assert [e.field for e in errors] == ["to.phone", "to.email", "expires_at"]


def test_time_errors_are_reported_alongside_model_errors(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    wire["id"] = "has space"
    del wire["not_before"]
    wire["expires_at"] = (now - timedelta(hours=1)).isoformat()

    assert {e.field for e in _errors(wire, catalog, now)} == {"id", "expires_at"}


def test_error_message_joins_field_and_message(wire: dict[str, Any], catalog: Catalog, now: datetime) -> None:
    wire["priority"] = 1

    with pytest.raises(ReminderInvalid, match=r"^priority: is not a known field$"):
        parse_reminder(wire, catalog, now)


@pytest.mark.parametrize("raw", [[], "reminder", 42, None])
def test_non_object_is_rejected_without_a_field(raw: Any, catalog: Catalog, now: datetime) -> None:
    assert _errors(raw, catalog, now) == [FieldError("", "a reminder must be a JSON object")]


def test_a_model_instance_still_gets_the_catalog_and_clock_checks(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    reminder = Reminder.model_validate(wire)

    later = reminder.expires_at + timedelta(seconds=1)  # type: ignore[operator]
    assert [e.field for e in _errors(reminder, catalog, later)] == ["expires_at"]


def test_channel_without_a_template_is_reported_at_its_index(
    wire: dict[str, Any], tmp_path: Path, now: datetime
) -> None:
    kind = tmp_path / "sms_only"
    kind.mkdir()
    (kind / "kind.toml").write_text('category = "transactional"\n')
    (kind / "sms.en.j2").write_text("hello")
    wire["kind"] = "sms_only"
    wire["channels"] = ["sms", "push"]

    (error,) = _errors(wire, load_catalog(tmp_path), now)
    assert error.field == "channels[1]"
    assert "push" in error.message
