"""Producer.enqueue_many and `herald enqueue` on generated batches, against a real redis-server.

A batch mixes valid reminders with edited ones and with values that are no reminder at all.
Whatever it holds: one result per input in input order, no exception, every good reminder
accepted and stored exactly as sent, every bad one rejected with its fields named and nothing
stored for it. `herald enqueue` reads the same batch as JSON Lines (plus lines that are not
JSON or not UTF-8) and reports every line, exiting 0 or 1, never crashing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from herald.cli import app
from herald.intake.producer import Producer
from herald.intake.validation import ReminderInvalid, parse_reminder
from herald.models import MAX_DATA_BYTES, MAX_DATA_DEPTH
from herald.rendering.catalog import Catalog
from herald.state.status import read_status
from tests.fuzz.strategies import apply, json_values, mutations, nested, python_values, valid_reminder

pytestmark = pytest.mark.fuzz

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)

GOOD = object()
"""A slot in a generated batch that gets a fresh valid reminder when the example runs (ids must
be new on every run: hypothesis replays examples)."""


@st.composite
def batches(draw: st.DrawFn, junk: st.SearchStrategy[Any] = python_values) -> list[Any]:
    """Slots: GOOD, a valid reminder's edits, or a value that is no reminder."""
    slot = st.one_of(st.just(GOOD), mutations().map(lambda edits: ("edit", edits)), junk)
    return draw(st.lists(slot, min_size=1, max_size=8))


def _materialise(slots: list[Any]) -> tuple[list[Any], list[bool]]:
    """The batch to send, and which of its items are the fresh valid reminders."""
    items: list[Any] = []
    good: list[bool] = []
    for slot in slots:
        if slot is GOOD:
            items.append(valid_reminder())
            good.append(True)
        elif isinstance(slot, tuple) and len(slot) == 2 and slot[0] == "edit":
            items.append(apply(valid_reminder(), slot[1]))
            good.append(False)
        else:
            items.append(slot)
            good.append(False)
    return items, good


def _errors(raw: Any, catalog: Catalog) -> list[tuple[str, str]] | None:
    """What parse_reminder says of ``raw`` on its own: its errors, or None when it is valid."""
    try:
        parse_reminder(raw, catalog, datetime.now(UTC))
    except ReminderInvalid as exc:
        return [(e.field, e.message) for e in exc.errors]
    return None


def _stored_body(client: redis.Redis, reminder_id: str) -> dict[str, Any] | None:
    body = client.get(f"herald:b:{reminder_id}")
    return orjson.loads(body) if body else None


@FUZZ
@given(slots=batches())
def test_enqueue_many_answers_each_reminder_and_spares_the_good_ones(
    producer: Producer, fuzz_redis: redis.Redis, catalog: Catalog, slots: list[Any]
) -> None:
    items, good = _materialise(slots)

    results = producer.enqueue_many(items)

    assert len(results) == len(items)
    for item, is_good, result in zip(items, good, results, strict=True):
        if is_good:
            assert result.status == "accepted", result.errors
            stored = _stored_body(fuzz_redis, item["id"])
            assert stored is not None
            assert stored["data"] == item["data"]
            assert stored["to"]["phone"] == item["to"]["phone"]
            continue
        expected = _errors(item, catalog)
        if expected is None:  # an edit that kept it valid (or an id reused by an earlier edit)
            assert result.status in ("accepted", "duplicate", "conflict")
            continue
        assert result.status == "rejected"
        assert [(e.field, e.message) for e in result.errors] == expected
        assert all(e.message for e in result.errors)
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"].startswith("fz-"):
            assert _stored_body(fuzz_redis, item["id"]) is None


def _encoded_size(data: dict[str, Any]) -> int:
    """Bytes of ``data`` as compact UTF-8 JSON (the standard library's encoder, not the code under
    test's)."""
    return len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


DEPTHS = [1, MAX_DATA_DEPTH, MAX_DATA_DEPTH + 1, 254, 255, 5000]
"""Levels of nesting under ``data``: at the limit, one past it, and around orjson's own limit."""
_ROOM = MAX_DATA_BYTES - _encoded_size({**valid_reminder()["data"], "blob": ""})
SIZES = [1, 5_000, _ROOM // 3, _ROOM // 3 + 1, 200_000]
"""Characters of Chinese text (3 bytes each) added to a valid reminder's ``data``: the middle two
encode to just under 16 KiB and just over."""


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_and_oversized_data_is_rejected_alone(producer: Producer, depth: int, size: int) -> None:
    base = valid_reminder()["data"]  # what the templates show; then the deep or big part
    deep = {**valid_reminder(), "data": {**base, "deep": nested(depth)}}  # containers at levels 1 .. depth
    good = valid_reminder()
    big = {**valid_reminder(), "data": {**base, "blob": "李" * size}}

    results = producer.enqueue_many([deep, good, big])

    assert results[1].status == "accepted"
    for result, rejected in (
        (results[0], depth > MAX_DATA_DEPTH),
        (results[2], _encoded_size(big["data"]) > MAX_DATA_BYTES),
    ):
        if rejected:
            assert result.status == "rejected"
            assert [e.field for e in result.errors] == ["data"]
        else:
            assert result.status == "accepted", result.errors


def _line(item: Any, ascii_only: bool) -> bytes:
    """``item`` as one JSON Lines line, if JSON can say it (else its repr, which is not JSON)."""
    try:
        return json.dumps(item, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return repr(item).encode("utf-8", "surrogatepass")


raw_lines = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"{", b"[]", b"null", b'"\\ud800"', b"\xff\xfe", b"\xef\xbb\xbf{}", b"  ", b"\r"]),
    json_values.map(lambda v: _line(v, True)),
)


@st.composite
def jsonl(draw: st.DrawFn) -> list[Any]:
    """Slots of a JSON Lines file: GOOD, edited reminders, JSON values and raw byte lines."""
    slot = st.one_of(
        st.just(GOOD),
        mutations(json_values).map(lambda edits: ("edit", edits)),
        raw_lines.map(lambda b: ("raw", b)),
    )
    return draw(st.lists(slot, min_size=1, max_size=6))


def _file(slots: list[Any], ascii_only: bool) -> tuple[bytes, dict[int, str]]:
    """The file's bytes and the line number of each fresh valid reminder (by id)."""
    lines: list[bytes] = []
    good: dict[int, str] = {}
    for slot in slots:
        if slot is GOOD:
            reminder = valid_reminder()
            reminder["data"]["note"] = "李伟\u2028\x85\u202e𝕏 [bold]x[/bold] {{ 7 * 7 }}"
            lines.append(_line(reminder, ascii_only))
            good[len(lines)] = reminder["id"]
        elif slot[0] == "edit":
            lines.append(_line(apply(valid_reminder(), slot[1]), ascii_only))
        else:
            lines.append(slot[1])
    return b"\n".join(lines) + b"\n", good


@FUZZ
@given(slots=jsonl(), ascii_only=st.booleans(), from_stdin=st.booleans())
def test_enqueue_command_reports_every_line_and_accepts_the_good_ones(
    cli_env: None,
    tmp_path: Path,
    fuzz_redis: redis.Redis,
    slots: list[Any],
    ascii_only: bool,
    from_stdin: bool,
) -> None:
    content, good = _file(slots, ascii_only)
    path = tmp_path / "batch.jsonl"
    path.write_bytes(content)
    args = ["enqueue", "--json", "-" if from_stdin else str(path)]

    done = CliRunner().invoke(app, args, input=content if from_stdin else None)

    assert done.exit_code in (0, 1), (done.output, done.exception)
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    numbers = [n for n, line in enumerate(content.split(b"\n"), start=1) if line.strip()]
    assert [a["line"] for a in answers] == numbers
    by_line = {a["line"]: a for a in answers}
    for number, reminder_id in good.items():
        assert by_line[number]["status"] == "accepted", by_line[number]
        stored = _stored_body(fuzz_redis, reminder_id)
        assert stored is not None
        assert stored["data"]["note"] == "李伟\u2028\x85\u202e𝕏 [bold]x[/bold] {{ 7 * 7 }}"
    for answer in answers:
        if answer["status"] == "rejected":
            assert answer["errors"]
            assert all(e["message"] for e in answer["errors"])
    assert done.exit_code == (1 if any(a["status"] in ("rejected", "conflict") for a in answers) else 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slots=jsonl())
def test_enqueue_command_table_never_breaks_on_hostile_text(
    cli_env: None, tmp_path: Path, slots: list[Any]
) -> None:
    content, _ = _file(slots, ascii_only=False)
    path = tmp_path / "batch.jsonl"
    path.write_bytes(content)

    done = CliRunner().invoke(app, ["enqueue", str(path)])

    assert done.exit_code in (0, 1), (done.output, done.exception)
    assert "accepted," in done.stdout
    assert "\x1b[31m" not in done.stdout  # text from the file never reaches the terminal as control codes
    assert "\u202e" not in done.stdout


def test_enqueue_command_table_shows_markup_and_controls_as_text(cli_env: None, tmp_path: Path) -> None:
    lines = [
        json.dumps({**valid_reminder(), "id": "[/bold]"}),
        json.dumps({**valid_reminder(), "id": "\x1b[31mred\u202e"}),
        json.dumps(valid_reminder(), ensure_ascii=False),
        "not json",
    ]
    path = tmp_path / "batch.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")

    done = CliRunner().invoke(app, ["enqueue", str(path)])

    assert done.exit_code == 1, (done.output, done.exception)
    assert "1 accepted, 0 duplicate, 4 rejected, 0 conflict" in done.stdout
    assert "[/bold]" in done.stdout
    assert "\\x1b[31mred\\u202e" in done.stdout
    assert "not valid JSON" in done.stdout


_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), timezone(timedelta(hours=8))]
)
_ANY_TIME = st.none() | st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES
).map(lambda t: t.isoformat())


@FUZZ
@given(times=st.lists(st.tuples(_ANY_TIME, _ANY_TIME), min_size=1, max_size=6))
def test_any_not_before_and_expiry_are_answered_per_reminder_and_an_accepted_one_can_be_read(
    producer: Producer, fuzz_redis: redis.Redis, times: list[tuple[str | None, str | None]]
) -> None:
    items = []
    for not_before, expires_at in times:
        reminder = valid_reminder()
        reminder.pop("not_before"), reminder.pop("expires_at")
        if not_before is not None:
            reminder["not_before"] = not_before
        if expires_at is not None:
            reminder["expires_at"] = expires_at
        items.append(reminder)

    results = producer.enqueue_many(items)  # never raises: each gets its own answer

    assert len(results) == len(items)
    for item, result in zip(items, results, strict=True):
        if result.status == "rejected":
            assert {e.field for e in result.errors} <= {"not_before", "expires_at"}
            assert _stored_body(fuzz_redis, item["id"]) is None
            continue
        assert result.status == "accepted"
        status = read_status(fuzz_redis, item["id"])  # every stored time can be shown
        assert status["expires_at"] is not None
        assert status["expires_at"] > (status["not_before"] or "")
