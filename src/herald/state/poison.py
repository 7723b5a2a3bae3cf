"""Messages on a herald queue that herald cannot work on: dead-lettered and dropped, never looped.

Anything can be pushed onto a herald queue: bytes that are not JSON, a JSON value that is not a
kombu message, a message from another application, a Celery task herald does not have, a task
message whose body cannot be decoded or has the wrong shape, a herald task with the wrong
arguments. Left to Celery, some of these stop the worker process and some come back after
every restart (the message is restored from kombu's unacknowledged set): a crash loop that
also holds back every good message behind it.

Each one is instead appended to the ``herald:deadletter`` stream as one entry of ``type``
``message`` — the queue, the task name if it has one, the reason, a truncated repr of what
arrived with phone numbers, email addresses and long tokens masked, and the time — and
acknowledged, so it is gone from the queue. A message that cannot be read now cannot be read
later, so it is never re-queued. ``herald deadletter list`` shows these entries beside dead
deliveries; they cannot be replayed (no delivery stands behind them) and
``herald deadletter drop`` removes them once looked at.

Three places catch them, each where the message first fails: herald's broker transport
(:class:`ScreenedReads`: items kombu could not take as a message), herald's Celery consumer
(``worker.consumer``: messages Celery cannot turn into a herald task) and the tasks themselves
(:func:`intake_args`, :func:`deliver_args`: arguments that are not what herald publishes).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu.utils.json import loads as kombu_loads

from herald import clock
from herald.config import get_settings
from herald.display import masking
from herald.models import CHANNELS, Channel, split_delivery_key
from herald.state import store

log = logging.getLogger("herald.state.poison")

MESSAGE = "message"
"""The ``type`` of a dead-letter entry that records a message (a dead delivery has none)."""
SAMPLE_CHARS = 300
"""How much of a message's repr a dead-letter entry keeps."""
MAX_KEYS = 10_000
"""Most delivery keys one task message may carry (herald publishes batches of hundreds)."""

_LONG_DIGITS = re.compile(r"\d{7,}")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{40,}")


def sample(value: object, limit: int = SAMPLE_CHARS) -> str:
    """A repr of ``value`` cut to ``limit`` characters, with personal data masked: phone
    numbers (with or without ``+``), email addresses and long tokens (push tokens)."""
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text)} characters)"
    return mask(text)


def mask(text: str) -> str:
    """``text`` with phone numbers (with or without ``+``), email addresses and long tokens
    masked."""
    text = masking.scrub(text)
    text = _LONG_DIGITS.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-2:], text)
    return _LONG_TOKEN.sub(lambda m: masking.mask_token(m.group(0)), text)


def record(
    client: redis.Redis, *, queue: str, task: str, reason: str, body: object, maxlen: int
) -> str | None:
    """Append one message's dead letter; returns its entry id (None when Redis refused: the
    message is then only in the log, masked)."""
    fields = {
        "type": MESSAGE,
        "queue": queue[:200],
        "task": task[:200],
        "reason": mask(reason[:500]),
        "message": sample(body),
        "at": store.iso(clock.time()),
    }
    log.error(
        "dead-lettered a message on %s (task %s): %s; message: %s",
        fields["queue"] or "?",
        fields["task"] or "-",
        fields["reason"],
        fields["message"],
    )
    try:
        entry = client.xadd(store.DEADLETTER, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    except redis.RedisError as exc:
        log.error("could not record that dead letter: %s", exc)
        return None
    return entry.decode() if isinstance(entry, bytes) else str(entry)


# --- the broker: items on a queue list that are no kombu message ---------------------------


def envelope_problem(raw: bytes | str) -> str | None:
    """Why ``raw``, an item taken from a queue list, is not a message kombu's Redis transport
    can take (None when it is one). Checks what kombu reads before any handler sees it."""
    try:
        payload = kombu_loads(raw)
    except (ValueError, TypeError) as exc:  # not UTF-8, not JSON, a bad {"__type__": ...}
        return f"not JSON: {exc}"
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not a message object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no 'properties' object"
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        return "no 'properties.delivery_tag' string"
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not {"exchange", "routing_key"} <= info.keys():
        return "no 'properties.delivery_info' with exchange and routing_key"
    for name in ("content-type", "content-encoding"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            return f"'{name}' is not a string"
    if payload.get("headers") is not None and not isinstance(payload["headers"], dict):
        return "'headers' is not an object"
    return _body_problem(payload.get("body"), properties.get("body_encoding"))


def _body_problem(body: Any, encoding: Any) -> str | None:
    if not body:
        return None
    if encoding is not None and not isinstance(encoding, str):
        return "'properties.body_encoding' is not a string"
    if encoding and encoding.lower() == "base64":
        if not isinstance(body, str | bytes):
            return "a base64 body that is not a string"
        try:
            base64.b64decode(body)
        except ValueError as exc:
            return f"a base64 body that does not decode: {exc}"
        return None
    if encoding and encoding.lower() != "utf-8":
        return f"unknown body encoding {encoding!r}"
    if isinstance(body, str):
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            return "a body that is not valid text (a lone surrogate)"
    return None


class ScreenedReads:
    """A mixin for kombu's Redis channels: every item BRPOP takes from a queue is checked
    (:func:`envelope_problem`) before kombu reads it. One that is no message is dead-lettered
    and read as "nothing arrived", so kombu's reader and Celery's consumer go on as after an
    empty poll; kombu itself would raise inside its event loop and stop the worker process.
    """

    sep: str

    def _get_client(self) -> Any:
        base: Any = super()._get_client()  # type: ignore[misc]
        if isinstance(base, functools.partial):  # a global key prefix: a partial of the class
            cls: Any = base.func
            return functools.partial(_screening(cls, self), *base.args, **base.keywords)
        return _screening(base, self)

    def screen_brpop(self, reply: tuple[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """``reply`` when it carries a message kombu can read, else None (after recording it)."""
        dest, item = reply
        problem = envelope_problem(item)
        if problem is None:
            return reply
        list_name = dest.decode("utf-8", "replace") if isinstance(dest, bytes) else str(dest)
        conn: Any = self
        with conn.conn_or_acquire() as client:
            record(
                client,
                queue=list_name.split(self.sep, 1)[0],
                task="",
                reason=f"not a kombu message: {problem}",
                body=item,
                maxlen=get_settings().events_maxlen,
            )
        return None


def _screening(base: type[redis.Redis], channel: ScreenedReads) -> type[redis.Redis]:
    """A subclass of ``base`` whose BRPOP replies go through ``channel.screen_brpop``."""

    class ScreeningRedis(base):  # type: ignore[valid-type, misc]
        def parse_response(self, connection: Any, command_name: str | bytes, **options: Any) -> Any:
            response = super().parse_response(connection, command_name, **options)
            if command_name == "BRPOP" and response:
                return channel.screen_brpop(response)
            return response

    return ScreeningRedis


# --- the tasks: arguments that are not what herald publishes -------------------------------


@dataclass(frozen=True)
class TaskArgs:
    """A task message's arguments as herald reads them: the delivery keys it may work on, and
    what was wrong (empty when nothing was)."""

    keys: list[str] = field(default_factory=list)
    channel: Channel | None = None
    problem: str = ""


def _key_channel(key: str) -> str:
    try:
        return split_delivery_key(key)[1]
    except ValueError:
        return ""


def _keys(value: object, channel: Channel | None) -> tuple[list[str], str]:
    if not isinstance(value, list):
        return [], f"the keys are a {type(value).__name__}, not a list"
    if len(value) > MAX_KEYS:
        return [], f"{len(value)} keys; at most {MAX_KEYS} in one message"
    good: list[str] = []
    bad: list[object] = []
    for key in value:
        if isinstance(key, str) and _key_channel(key) in ((channel,) if channel else CHANNELS):
            good.append(key)
        else:
            bad.append(key)
    what = "delivery keys" if channel is None else f"{channel} delivery keys"
    problem = f"{len(bad)} of {len(value)} keys are not {what}, e.g. {sample(bad[0], 80)}" if bad else ""
    return good, problem


def intake_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TaskArgs:
    """The arguments of ``herald.intake``: one list of delivery keys."""
    values = [*args, *kwargs.values()]
    if len(values) != 1 or (kwargs and "keys" not in kwargs):
        return TaskArgs(problem=f"expected one argument (the keys), got {sample((args, dict(kwargs)), 120)}")
    keys, problem = _keys(values[0], None)
    return TaskArgs(keys, problem=problem)


def deliver_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TaskArgs:
    """The arguments of ``herald.deliver``: a channel and a list of that channel's keys."""
    named = dict(kwargs)
    values = [*args, *(named.pop(name) for name in ("channel", "keys") if name in named)]
    if len(values) != 2 or named:
        return TaskArgs(
            problem=f"expected two arguments (channel, keys), got {sample((args, dict(kwargs)), 120)}"
        )
    channel, raw_keys = values
    if channel not in CHANNELS:
        return TaskArgs(problem=f"unknown channel {sample(channel, 40)}")
    keys, problem = _keys(raw_keys, channel)
    return TaskArgs(keys, channel, problem)
