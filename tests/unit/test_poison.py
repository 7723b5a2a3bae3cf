"""herald.state.poison: which queue items are no message, which task arguments are wrong, and the
masked sample a dead letter keeps."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kombu import Connection

from herald.state.poison import MAX_KEYS, deliver_args, envelope_problem, intake_args, sample


def _envelope(**overrides: Any) -> dict[str, Any]:
    """A message as kombu's Redis transport stores it on a queue list."""
    envelope: dict[str, Any] = {
        "body": base64.b64encode(b"[[], {}, {}]").decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "herald.deliver", "id": "1"},
        "properties": {
            "delivery_tag": "d1b8b6f2-0000-4000-8000-000000000000",
            "delivery_info": {"exchange": "", "routing_key": "herald.sms"},
            "body_encoding": "base64",
            "priority": 0,
        },
    }
    envelope.update(overrides)
    return envelope


def test_what_kombu_itself_writes_passes() -> None:
    with Connection("memory://") as connection:
        channel = connection.default_channel
        message = channel.prepare_message(
            channel.encode_body(b"[[], {}, {}]", "base64")[0],
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": "herald.intake", "id": "x"},
            properties={"body_encoding": "base64", "delivery_tag": "t-1"},
        )
    message["properties"]["delivery_info"] = {"exchange": "", "routing_key": "herald.intake"}

    assert envelope_problem(json.dumps(message).encode()) is None
    assert envelope_problem(json.dumps(_envelope())) is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"__type__": "datetime", "__value__": "garbage"}', "not JSON"),
        (b"[1, 2]", "a JSON list, not a message object"),
        (b'"text"', "a JSON str, not a message object"),
        (b'{"hello": "world"}', "no 'properties' object"),
        (json.dumps(_envelope(properties=[])), "no 'properties' object"),
        (json.dumps(_envelope(properties={"delivery_info": {}})), "no 'properties.delivery_tag' string"),
        (
            json.dumps(_envelope(properties={"delivery_tag": "t", "delivery_info": "x"})),
            "no 'properties.delivery_info'",
        ),
        (json.dumps(_envelope(headers="task")), "'headers' is not an object"),
        (json.dumps(_envelope(**{"content-type": 5})), "'content-type' is not a string"),
        (json.dumps(_envelope(body="abcde")), "a base64 body that does not decode"),
        (json.dumps(_envelope(body=17)), "a base64 body that is not a string"),
        (
            json.dumps(_envelope(properties={**_envelope()["properties"], "body_encoding": "rot13"})),
            "unknown body encoding 'rot13'",
        ),
        (
            json.dumps(
                _envelope(body="\ud800", properties={**_envelope()["properties"], "body_encoding": None})
            ),
            "lone surrogate",
        ),
    ],
)
def test_items_kombu_cannot_take_are_named(raw: bytes | str, problem: str) -> None:
    found = envelope_problem(raw)

    assert found is not None
    assert problem in found


def test_a_sample_is_cut_and_masks_personal_data() -> None:
    body = {"phone": "+8613800138000", "bare": "13800138000", "email": "li.wei@example.cn"}
    body["token"] = "fcm" + "A" * 150

    text = sample(body)
    long_text = sample("x" * 10_000)

    for secret in ("+8613800138000", "13800138000", "li.wei@example.cn", "A" * 40):
        assert secret not in text
    assert "+86138****8000" in text
    assert "l****@example.cn" in text
    assert len(long_text) < 400
    assert long_text.endswith("(10002 characters)")


def test_a_sample_of_any_value_is_printable_text() -> None:
    assert sample(b"\x00\xff") == "b'\\x00\\xff'"
    assert sample("\ud800\u202e") == "'\\ud800\\u202e'"


@pytest.mark.parametrize(
    ("args", "kwargs", "keys", "problem"),
    [
        ((["a:sms", "b:email"],), {}, ["a:sms", "b:email"], ""),
        ((), {"keys": ["a:push"]}, ["a:push"], ""),
        ((["a:sms", "nope", 5, "b:fax"],), {}, ["a:sms"], "3 of 4 keys are not delivery keys, e.g. 'nope'"),
        (({"a": 1},), {}, [], "the keys are a dict, not a list"),
        ((), {}, [], "expected one argument (the keys)"),
        ((["a:sms"], ["b:sms"]), {}, [], "expected one argument (the keys)"),
        ((), {"other": ["a:sms"]}, [], "expected one argument (the keys)"),
        ((["a:sms"] * (MAX_KEYS + 1),), {}, [], f"at most {MAX_KEYS} in one message"),
    ],
)
def test_intake_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], keys: list[str], problem: str
) -> None:
    parsed = intake_args(args, kwargs)

    assert parsed.keys == keys
    if problem:
        assert problem in parsed.problem
    else:
        assert parsed.problem == ""


@pytest.mark.parametrize(
    ("args", "kwargs", "channel", "keys", "problem"),
    [
        (("sms", ["a:sms"]), {}, "sms", ["a:sms"], ""),
        ((), {"channel": "push", "keys": ["a:push"]}, "push", ["a:push"], ""),
        (("sms",), {"keys": ["a:sms"]}, "sms", ["a:sms"], ""),
        (("sms", ["a:sms", "a:email"]), {}, "sms", ["a:sms"], "1 of 2 keys are not sms delivery keys"),
        (("fax", ["a:fax"]), {}, None, [], "unknown channel 'fax'"),
        ((["sms"], ["a:sms"]), {}, None, [], "unknown channel ['sms']"),
        (("sms", "a:sms"), {}, "sms", [], "the keys are a str, not a list"),
        ((), {}, None, [], "expected two arguments (channel, keys)"),
        (("sms", [], "extra"), {}, None, [], "expected two arguments (channel, keys)"),
        (("sms", []), {"priority": 1}, None, [], "expected two arguments (channel, keys)"),
    ],
)
def test_deliver_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], channel: str | None, keys: list[str], problem: str
) -> None:
    parsed = deliver_args(args, kwargs)

    assert parsed.keys == keys
    assert parsed.channel == channel
    if problem:
        assert problem in parsed.problem
    else:
        assert parsed.problem == ""
