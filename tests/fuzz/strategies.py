"""Hypothesis strategies for hostile reminders: JSON-ish values of every shape, and valid
reminders with some fields replaced, removed or added.

Text includes what breaks naive code: NUL, lone surrogates, right-to-left overrides, line and
paragraph separators, astral characters, huge strings. Values include huge and non-finite
numbers, deep nesting and bytes (the Python API accepts any object).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.harness import make_reminder

NASTY = ["\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\u2028", "\u2029", "\x85", "\ufeff", "\x1b[31m"]
NASTY += ["[/bold]", "{{ 7 * 7 }}", "𝕏", "李伟", "<script>", "'\"", "+8613800138000", "a@b.cn", ""]

characters = st.characters(codec=None, exclude_categories=())
"""Any code point, surrogates and control characters included."""

text = st.one_of(
    st.text(characters, max_size=40),
    st.sampled_from(NASTY),
    st.lists(st.sampled_from(NASTY), max_size=6).map("".join),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "李", "\u202e", "\x00"]), st.integers(1, 70_000)),
)


def nested(depth: int) -> Any:
    """A list inside a dict inside a list ... ``depth`` levels deep."""
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(characters, max_size=10), inner, max_size=5),
    ),
    max_leaves=20,
)
"""Values a JSON document can hold, and a few it cannot (NaN, huge ints, lone surrogates)."""

python_values = st.one_of(
    json_values,
    st.integers(1, 3000).map(nested),
    st.binary(max_size=20),
    st.sets(st.integers(), max_size=3),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=3),
    st.just(datetime.now(UTC)),
    st.builds(object),
)
"""What a Python caller may hand ``enqueue_many`` by mistake."""

DELETE = object()
"""The mutation that removes a field."""

FIELDS = ["id", "account_id", "kind", "channels", "to", "data", "not_before", "expires_at"]
TO_FIELDS = ["phone", "email", "push_tokens", "locale", "timezone"]


def valid_reminder() -> dict[str, Any]:
    """A reminder every check accepts, with a fresh id and dates relative to now."""
    now = datetime.now(UTC)
    return make_reminder(
        id=f"fz-{uuid.uuid4().hex}",
        not_before=(now + timedelta(hours=1)).isoformat(),
        expires_at=(now + timedelta(days=2)).isoformat(),
    )


@st.composite
def mutations(draw: st.DrawFn, values: st.SearchStrategy[Any] = python_values) -> list[tuple[str, Any]]:
    """Edits to a valid reminder: (path, value) to set, (path, DELETE) to remove a field.

    Paths are ``field``, ``to.field``, ``data.key`` or an unknown top-level field.
    """
    paths = st.one_of(
        st.sampled_from(FIELDS),
        st.sampled_from(TO_FIELDS).map(lambda f: f"to.{f}"),
        st.text(characters, min_size=1, max_size=8).map(lambda k: f"data.{k}"),
        st.sampled_from(["category", "priority", "Id", "id ", "__proto__"]),
    )
    edits = draw(st.lists(st.tuples(paths, st.one_of(st.just(DELETE), values)), min_size=1, max_size=3))
    return [(path, value) for path, value in edits]


def apply(reminder: dict[str, Any], edits: list[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of ``reminder`` with ``edits`` applied (see :func:`mutations`)."""
    out = {**reminder, "to": dict(reminder["to"]), "data": dict(reminder["data"])}
    for path, value in edits:
        parent: Any = out
        head, _, rest = path.partition(".")
        if head in ("to", "data") and rest:
            if not isinstance(out.get(head), dict):
                continue  # that whole field was already replaced
            parent, path = out[head], rest
        if value is DELETE:
            parent.pop(path, None)
        else:
            parent[path] = value
    return out


def roots(edits: list[tuple[str, Any]]) -> set[str]:
    """The top-level fields the edits touched."""
    return {path.partition(".")[0] for path, _ in edits}


def root_of(field: str) -> str:
    """The top-level field of an error's dotted path (``to.phone`` -> ``to``, ``channels[0]`` ->
    ``channels``); unknown top-level fields are named as they are."""
    if field in FIELDS or not field.startswith(tuple(FIELDS)):
        return field
    return re.split(r"[.\[]", field, maxsplit=1)[0]


RELATED = {
    "channels": {"to"},
    "to": {"to"},
    "kind": {"channels"},
    "not_before": {"expires_at"},
    "expires_at": {"expires_at"},
}
"""Fields whose edit may be blamed on another field by a cross-field rule: a channel needs its
address (to.*), a kind needs a template per channel (channels[i]), expires_at must be after
not_before."""


def blamable(edits: list[tuple[str, Any]]) -> set[str]:
    """Top-level fields an error may name after ``edits``."""
    touched = roots(edits)
    return touched | {other for field in touched for other in RELATED.get(field, set())}
