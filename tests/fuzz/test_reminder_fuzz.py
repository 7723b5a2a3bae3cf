"""parse_reminder and the Reminder model on generated input: a verdict, never a crash.

Every input ends either as a ``Reminder`` whose stored body is exactly what was sent, or as
``ReminderInvalid`` listing at least one error, each naming a field the input got wrong (or
one a cross-field rule ties to it) with a message that is plain, encodable text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.intake.validation import ReminderInvalid, parse_reminder
from herald.models import MAX_DATA_DEPTH, Reminder
from herald.rendering.catalog import Catalog
from tests.fuzz.strategies import (
    apply,
    blamable,
    json_values,
    mutations,
    nested,
    python_values,
    root_of,
    valid_reminder,
)

pytestmark = pytest.mark.fuzz

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _verdict(raw: Any, catalog: Catalog) -> Reminder | ReminderInvalid:
    try:
        return parse_reminder(raw, catalog, datetime.now(UTC))
    except ReminderInvalid as exc:
        return exc


def _assert_clear(exc: ReminderInvalid) -> None:
    assert exc.errors, "a rejection lists at least one error"
    for error in exc.errors:
        assert error.message.strip(), error
        str(error).encode("utf-8")  # loggable and JSON-encodable: no lone surrogate in it


def _same_json(sent: Any, stored: Any) -> bool:
    """``stored`` (read back from the canonical body) is ``sent``: every string and number as
    it was. Python values JSON has no type for (a date, a UUID) are stored in a JSON form."""
    if isinstance(sent, dict):
        return (
            isinstance(stored, dict)
            and sent.keys() == stored.keys()
            and all(_same_json(sent[k], stored[k]) for k in sent)
        )
    if isinstance(sent, list):
        return (
            isinstance(stored, list)
            and len(sent) == len(stored)
            and all(_same_json(a, b) for a, b in zip(sent, stored, strict=True))
        )
    if sent is None or isinstance(sent, str | bool | int | float):
        same_type = type(stored) is type(sent) or (isinstance(sent, str) and isinstance(stored, str))
        return same_type and sent == stored
    return stored is not None  # a date or a UUID is kept in the JSON form pydantic gives it


def test_the_unmutated_reminder_is_valid(catalog: Catalog) -> None:
    assert isinstance(_verdict(valid_reminder(), catalog), Reminder)


@FUZZ
@given(edits=mutations())
def test_an_edited_reminder_is_accepted_intact_or_rejected_naming_the_field(
    catalog: Catalog, edits: list[tuple[str, Any]]
) -> None:
    raw = apply(valid_reminder(), edits)

    verdict = _verdict(raw, catalog)

    if isinstance(verdict, ReminderInvalid):
        _assert_clear(verdict)
        named = {root_of(e.field) for e in verdict.errors}
        assert named <= blamable(edits), (named, edits)
    else:
        stored = orjson.loads(verdict.canonical())
        assert _same_json(raw.get("data", {}), stored["data"])
        assert stored["id"] == verdict.id
        if isinstance(raw["id"], str):
            assert verdict.id == raw["id"]


@FUZZ
@given(raw=python_values)
def test_anything_that_is_not_an_object_is_rejected_as_such(catalog: Catalog, raw: Any) -> None:
    verdict = _verdict(raw, catalog)

    assert isinstance(verdict, ReminderInvalid)
    _assert_clear(verdict)
    if not isinstance(raw, dict):
        assert [str(e) for e in verdict.errors] == ["a reminder must be a JSON object"]


@FUZZ
@given(raw=st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_arbitrary_objects_get_a_verdict(catalog: Catalog, raw: dict[str, Any]) -> None:
    verdict = _verdict(raw, catalog)

    if isinstance(verdict, ReminderInvalid):
        _assert_clear(verdict)
        assert all(e.field for e in verdict.errors), verdict.errors


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(1, 5000))
def test_deeply_nested_data_is_rejected_or_kept_whole(catalog: Catalog, depth: int) -> None:
    base = valid_reminder()
    raw = {**base, "data": {**base["data"], "deep": nested(depth)}}  # what the templates show, and more

    verdict = _verdict(raw, catalog)

    if depth > MAX_DATA_DEPTH:
        assert isinstance(verdict, ReminderInvalid)
        assert [e.field for e in verdict.errors] == ["data"]
        assert "nested" in verdict.errors[0].message or "plain JSON" in verdict.errors[0].message
    else:
        assert isinstance(verdict, Reminder)
        assert orjson.loads(verdict.canonical())["data"] == raw["data"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": "y" * 17_000}, "bytes encoded; the limit is 16384"),
        ({"x": float("nan")}, "NaN or Infinity at data.x"),
        ({"list": [1, {"y": float("-inf")}]}, "NaN or Infinity at data.list[1].y"),
        ({"x": 2**64}, "plain JSON"),
        ({"x": "\ud800"}, "plain JSON"),
        ({"x": b"bytes"}, "plain JSON"),
    ],
)
def test_data_that_json_cannot_hold_names_where(catalog: Catalog, data: dict[str, Any], message: str) -> None:
    verdict = _verdict({**valid_reminder(), "data": data}, catalog)

    assert isinstance(verdict, ReminderInvalid)
    assert [e.field for e in verdict.errors] == ["data"]
    assert message in verdict.errors[0].message


@pytest.mark.parametrize("token", ["a\x00b", "tok en", "tok\u202een", "токен", "\ud800"])
def test_a_push_token_that_is_not_a_device_token_is_rejected(catalog: Catalog, token: str) -> None:
    raw = valid_reminder()
    raw["to"]["push_tokens"] = ["fine-token-1", token]

    verdict = _verdict(raw, catalog)

    assert isinstance(verdict, ReminderInvalid)
    assert [e.field for e in verdict.errors] == ["to.push_tokens[1]"]
