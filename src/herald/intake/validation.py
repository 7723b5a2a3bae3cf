"""Turning untrusted input into a ``Reminder``, with one clear error per bad field.

The model checks each field; this module adds the rules that need the catalog or the clock
(the kind exists and has a template for each channel, each channel has its address, ``data``
has every field the templates of those channels show, in a form they can show — see
``herald.rendering.fields`` — and the times make sense) and formats every error as ``field: message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from herald.models import Reminder
from herald.rendering.catalog import Catalog
from herald.rendering.fields import missing_or_malformed


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a reminder; ``field`` is a dotted path."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ReminderInvalid(ValueError):
    """A reminder that cannot be accepted, with every field error found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":  # pydantic's mark for a bad key of a mapping (the part before it)
            path += " (key)"
        elif not part or not part.isprintable() or any(c in part for c in ".[]'\""):
            path += f"[{part!r}]"  # a name that would not read as one: '', 'a.b', '\u202e'
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "is not a known field"
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "string_unicode" and not error["loc"]:
        return "a field name is not valid text (it holds a lone surrogate)"
    return msg.removeprefix("Value error, ")


def from_validation_error(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as ``FieldError`` values."""
    return [FieldError(_field_path(tuple(e["loc"])), _message(e)) for e in exc.errors()]


_ADDRESS = {"sms": "to.phone", "email": "to.email", "push": "to.push_tokens"}


def _cross_checks(reminder: Reminder, catalog: Catalog, now: datetime) -> list[FieldError]:
    errors: list[FieldError] = []
    spec = catalog.kinds.get(reminder.kind)
    if spec is None:
        known = ", ".join(sorted(catalog.kinds))
        errors.append(FieldError("kind", f"unknown kind {reminder.kind!r} (known: {known})"))
    for index, channel in enumerate(reminder.channels):
        address = {
            "sms": reminder.to.phone,
            "email": reminder.to.email,
            "push": reminder.to.push_tokens,
        }[channel]
        if not address:
            errors.append(FieldError(_ADDRESS[channel], f"is required for channel {channel}"))
        if spec is not None and channel not in spec.locales:
            errors.append(FieldError(f"channels[{index}]", f"kind {spec.name} has no {channel} template"))
    if spec is not None:
        channels = [c for c in reminder.channels if c in spec.locales]
        for name, message in missing_or_malformed(catalog, spec, channels, reminder.to.locale, reminder.data):
            errors.append(FieldError("kind" if name is None else _field_path(("data", name)), message))
    return errors + _time_checks(reminder.not_before, reminder.expires_at, now)


MAX_AHEAD = timedelta(days=366)
"""How far ahead ``not_before`` and ``expires_at`` may lie: a reminder is about a debt or a plan
of the coming months; a time years ahead is a bug upstream (and its default expiry, added to
it, could pass the last date a computer calendar holds)."""


def _time_checks(not_before: datetime | None, expires_at: datetime | None, now: datetime) -> list[FieldError]:
    errors: list[FieldError] = []
    for name, value in (("not_before", not_before), ("expires_at", expires_at)):
        if value is not None and value - now > MAX_AHEAD:
            errors.append(FieldError(name, f"is more than {MAX_AHEAD.days} days ahead"))
    if expires_at is not None:
        if expires_at <= now:
            errors.append(FieldError("expires_at", "is already in the past"))
        if not_before is not None and expires_at <= not_before:
            errors.append(FieldError("expires_at", "must be later than not_before"))
    return errors


_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _raw_time(raw: Mapping[str, Any], name: str, reported: set[str]) -> datetime | None:
    if name in reported or raw.get(name) is None:
        return None
    try:
        return _AWARE.validate_python(raw[name])
    except ValidationError:
        return None


def _raw_checks(
    raw: Mapping[str, Any], catalog: Catalog, now: datetime, reported: set[str]
) -> list[FieldError]:
    """The catalog and address rules, on input the model refused, so every error shows at once."""
    errors: list[FieldError] = []
    kind = raw.get("kind")
    if "kind" not in reported and isinstance(kind, str) and kind not in catalog.kinds:
        known = ", ".join(sorted(catalog.kinds))
        errors.append(FieldError("kind", f"unknown kind {kind!r} (known: {known})"))
    to = raw.get("to")
    channels = raw.get("channels")
    if isinstance(to, Mapping) and isinstance(channels, list):
        for channel in channels:
            field = _ADDRESS.get(channel) if isinstance(channel, str) else None
            if field and field not in reported and not to.get(field.removeprefix("to.")):
                errors.append(FieldError(field, f"is required for channel {channel}"))
    times = _time_checks(_raw_time(raw, "not_before", reported), _raw_time(raw, "expires_at", reported), now)
    return errors + [e for e in times if e.field not in reported]


def parse_reminder(raw: Reminder | Mapping[str, Any], catalog: Catalog, now: datetime) -> Reminder:
    """Validate ``raw`` completely or raise ``ReminderInvalid`` naming every bad field."""
    if isinstance(raw, Reminder):
        reminder = raw
    elif not isinstance(raw, Mapping):
        raise ReminderInvalid([FieldError("", "a reminder must be a JSON object")])
    else:
        try:
            reminder = Reminder.model_validate(raw)
        except ValidationError as exc:
            errors = from_validation_error(exc)
            raise ReminderInvalid(
                errors + _raw_checks(raw, catalog, now, {e.field for e in errors})
            ) from None
    errors = _cross_checks(reminder, catalog, now)
    if errors:
        raise ReminderInvalid(errors)
    return reminder
