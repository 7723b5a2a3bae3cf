"""The wire format: a reminder as upstream services send it, and the words for its fate.

A ``Reminder`` is exactly the JSON object of DESIGN.md's wire format; unknown fields are
rejected and every error names its field. Cross-field rules that need the template catalog
(the kind exists, each channel has its address) live in ``herald.intake.validation``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import orjson
import phonenumbers
from babel import Locale, UnknownLocaleError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
MAX_ID = 128
MAX_DATA_BYTES = 16 * 1024
MAX_DATA_DEPTH = 32
MAX_PUSH_TOKENS = 20

Channel = Literal["sms", "email", "push"]
CHANNELS: tuple[Channel, ...] = ("sms", "email", "push")
Category = Literal["collection", "agreement", "transactional"]

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]


class Outcome(StrEnum):
    """The final word on a delivery (DESIGN.md, Words)."""

    SENT = "sent"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    EXPIRED = "expired"
    OPTED_OUT = "opted_out"
    CAPPED = "capped"
    FAILED = "failed"
    DEAD = "dead"
    INVALID = "invalid"
    IN_DOUBT = "in_doubt"


class State(StrEnum):
    """Transient states of a delivery; a delivery in none of these has an ``Outcome``."""

    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    RETRYING = "retrying"
    SENDING = "sending"


PENDING_STATES = frozenset({State.ACCEPTED, State.SCHEDULED, State.RETRYING})


def _e164(value: str) -> str:
    if not value.startswith("+"):
        raise ValueError("must be in E.164 form, starting with + and the country code")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"is not a phone number ({exc})") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("is not an IANA time zone name such as Asia/Shanghai")
    return value


def _locale(value: str) -> str:
    known = _locale_name(value)
    if known is None:
        raise ValueError("is not a locale such as zh-CN or en")
    return known


@lru_cache(maxsize=1024)
def _locale_name(value: str) -> str | None:
    """The canonical name of a locale Babel knows (``zh-CN``), or None: a few names recur in
    every batch, and Babel's parse costs about 50 µs each time."""
    try:
        parsed = Locale.parse(value.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    return "-".join(part for part in (parsed.language, parsed.territory) if part)


PhoneNumber = Annotated[str, StringConstraints(max_length=32), AfterValidator(_e164)]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]
LocaleName = Annotated[str, StringConstraints(max_length=16), AfterValidator(_locale)]


APNS_PREFIX = "apns:"
"""Marks an APNs device token (``apns:`` and its hexadecimal digits); a push token without it
(or with ``fcm:``) is an FCM registration token."""
FCM_PREFIX = "fcm:"
_APNS_DEVICE = re.compile(r"[0-9A-Fa-f]{64,200}")
_HEX = re.compile(r"[0-9A-Fa-f]*")


def _push_token(value: str) -> str:
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("must be a device token: printable ASCII, no spaces or control characters")
    if value.startswith(APNS_PREFIX):
        device = value[len(APNS_PREFIX) :]
        if not _APNS_DEVICE.fullmatch(device):
            found = (
                f"{len(device)} hexadecimal digits"
                if _HEX.fullmatch(device)
                else "other characters than hexadecimal digits"
            )
            raise ValueError(
                f"is an APNs token ({APNS_PREFIX}) with {found} after the prefix; "
                "an APNs device token is 64 to 200 hexadecimal digits"
            )
        return APNS_PREFIX + device.lower()  # one spelling, so opt-outs and duplicates match
    if value == FCM_PREFIX:
        raise ValueError(f"is an FCM token ({FCM_PREFIX}) with nothing after the prefix")
    return value


PushToken = Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_push_token)]


class Recipient(BaseModel):
    """Where and how to reach the person: addresses, language and time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: PhoneNumber | None = None
    email: EmailStr | None = Field(default=None, max_length=254)
    push_tokens: list[PushToken] = Field(default_factory=list, max_length=MAX_PUSH_TOKENS)
    locale: LocaleName = "zh-CN"
    timezone: TimeZoneName | None = None


def _data_problem(value: Any) -> str | None:
    """What is wrong with plain JSON ``data`` beyond its size: a NaN or infinite number (JSON
    has none), or nesting deeper than :data:`MAX_DATA_DEPTH`; None when nothing is."""
    stack: list[tuple[str, int, Any]] = [("", 0, value)]
    while stack:
        path, depth, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds NaN or Infinity at data{path}, which JSON has no numbers for"
        if isinstance(item, dict | list) and depth > MAX_DATA_DEPTH:
            return f"is nested more than {MAX_DATA_DEPTH} levels deep (at data{path})"
        if isinstance(item, dict):
            stack.extend((f"{path}.{key}", depth + 1, child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", depth + 1, child) for index, child in enumerate(item))
    return None


class Reminder(BaseModel):
    """One upstream request to tell one account something, on one or more channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    account_id: Identifier
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    channels: list[Channel] = Field(min_length=1, max_length=len(CHANNELS))
    to: Recipient
    data: dict[str, Any] = Field(default_factory=dict)
    not_before: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("lists a channel twice")
        return value

    @field_validator("data")
    @classmethod
    def _bounded_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except TypeError as exc:
            raise ValueError(f"must be plain JSON ({exc})") from exc
        if size > MAX_DATA_BYTES:
            raise ValueError(f"is {size} bytes encoded; the limit is {MAX_DATA_BYTES}")
        problem = _data_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def canonical(self) -> bytes:
        """The body as stored and hashed: sorted keys, omitted fields left out."""
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS)


def delivery_key(reminder_id: str, channel: str) -> str:
    """The delivery key of one reminder on one channel: ``<reminder id>:<channel>``."""
    return f"{reminder_id}:{channel}"


def split_delivery_key(key: str) -> tuple[str, Channel]:
    """Inverse of :func:`delivery_key`; raises ValueError for a key that is not one."""
    reminder_id, _, channel = key.rpartition(":")
    if not reminder_id or channel not in CHANNELS or not re.match(ID_PATTERN, reminder_id):
        raise ValueError(f"not a delivery key: {key!r}")
    return reminder_id, channel


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 timestamp as stored in Redis, or None."""
    return datetime.fromisoformat(value) if value else None
