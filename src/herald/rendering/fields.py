"""Which fields of ``data`` a kind's templates need, read from the templates themselves.

A reminder whose ``data`` lacks a field its templates print would be accepted and end
``invalid`` at send time, hours later, with the upstream service long gone. The templates are
the only complete statement of what a kind needs, so intake reads it from them: each template
is parsed once (never rendered) and every ``data.<name>`` / ``data["<name>"]`` it refers to is
collected.

- A field is **required** by a template that refers to it, unless that template guards it
  (``data.x is defined``, ``data.x | default(...)``, ``data.get("x")``): a guarded field is
  optional there.
- A field's **format** comes from the filter it is given to: ``money`` wants an amount (a
  finite decimal), ``date`` an ISO date or date-time, ``number`` a finite number; the argument
  of ``money`` is a currency (an ISO 4217 code). Other fields are shown as text.

Only the templates a delivery would use count: those of the reminder's channels, in the
locale each one falls back to (``email`` has its HTML part too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from babel.numbers import is_currency
from jinja2 import Environment, TemplateSyntaxError, meta, nodes

from herald.models import Channel
from herald.rendering.catalog import Catalog, KindSpec

Format = Literal["text", "amount", "date", "number", "currency"]
_FILTER_FORMATS: dict[str, Format] = {"money": "amount", "date": "date", "number": "number"}
_GUARD_TESTS = frozenset({"defined", "undefined"})
_GUARD_FILTERS = frozenset({"default", "d"})
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_STRICTER: tuple[Format, ...] = ("amount", "date", "number", "currency", "text")

# Parsing only: the sandbox that renders is herald.rendering.renderer's; nothing here is ever run.
_PARSER = Environment(trim_blocks=True, lstrip_blocks=True)  # noqa: S701 - parses, never renders


@dataclass(frozen=True)
class FieldUse:
    """What one template (or a set of them) needs of one ``data`` field."""

    name: str
    required: bool
    format: Format


@lru_cache(maxsize=512)
def _is_currency(code: str) -> bool:
    """Babel's check, remembered: it lists every currency it knows on each call."""
    return bool(is_currency(code))


def _field_of(node: nodes.Node) -> str | None:
    """``x`` when ``node`` is ``data.x`` or ``data["x"]``."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name == "data":
        return str(node.attr)
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "data"
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _stricter(a: Format, b: Format) -> Format:
    return a if _STRICTER.index(a) <= _STRICTER.index(b) else b


def analyse(source: str) -> dict[str, FieldUse]:
    """Every ``data`` field one template's source refers to; raises TemplateSyntaxError."""
    tree = _PARSER.parse(source)
    seen: set[str] = set()
    guarded: set[str] = set()
    formats: dict[str, Format] = {}
    methods: set[int] = set()  # data.get / data.items ...: calls on the mapping, not fields
    for call in tree.find_all(nodes.Call):
        callee = call.node
        if isinstance(callee, nodes.Getattr) and _field_of(callee) in _DICT_METHODS:
            methods.add(id(callee))
            if callee.attr == "get" and call.args and isinstance(call.args[0], nodes.Const):
                seen.add(str(call.args[0].value))
                guarded.add(str(call.args[0].value))
    for test in tree.find_all(nodes.Test):
        if test.name in _GUARD_TESTS and (name := _field_of(test.node)) is not None:
            guarded.add(name)
    for flt in tree.find_all(nodes.Filter):
        target = _field_of(flt.node) if flt.node is not None else None
        if flt.name in _GUARD_FILTERS and target is not None:
            guarded.add(target)
        if target is not None and flt.name in _FILTER_FORMATS:
            formats[target] = _stricter(formats.get(target, "text"), _FILTER_FORMATS[flt.name])
        if flt.name == "money" and flt.args and (currency := _field_of(flt.args[0])) is not None:
            formats[currency] = _stricter(formats.get(currency, "text"), "currency")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = _field_of(node)
        if name is not None and id(node) not in methods:
            seen.add(name)
    return {n: FieldUse(n, n not in guarded, formats.get(n, "text")) for n in sorted(seen)}


@lru_cache(maxsize=1024)
def _template_uses(root: Path, name: str) -> tuple[tuple[str, FieldUse], ...]:
    """The fields of template ``name`` under ``root`` and of the templates it includes or
    extends (read once per process)."""
    source = (root / name).read_text("utf-8")
    uses = analyse(source)
    for other in meta.find_referenced_templates(_PARSER.parse(source)):
        if other is not None:
            for field, use in _template_uses(root, other):
                uses[field] = merge(uses[field], use) if field in uses else use
    return tuple(uses.items())


def merge(a: FieldUse, b: FieldUse) -> FieldUse:
    """One field as two templates need it: required by either, the stricter format."""
    return FieldUse(a.name, a.required or b.required, _stricter(a.format, b.format))


def template_names(spec: KindSpec, channel: Channel, locale: str) -> list[str]:
    """The templates (relative to the root) a delivery on ``channel`` in ``locale`` renders."""
    resolved = spec.template_locale(channel, locale)
    if resolved is None:
        return []
    names = [f"{spec.name}/{channel}.{resolved}.j2"]
    if channel == "email" and resolved in spec.html_locales:
        names.append(f"{spec.name}/email.{resolved}.html.j2")
    return names


def fields_of(catalog: Catalog, spec: KindSpec, channel: Channel, locale: str) -> dict[str, FieldUse]:
    """What a delivery of ``spec`` on ``channel`` in ``locale`` needs of ``data``."""
    return dict(_uses_of(catalog.root, tuple(template_names(spec, channel, locale))))


@lru_cache(maxsize=1024)
def _uses_of(root: Path, names: tuple[str, ...]) -> tuple[tuple[str, FieldUse], ...]:
    uses: dict[str, FieldUse] = {}
    for name in names:
        for field, use in _template_uses(root, name):
            uses[field] = merge(uses[field], use) if field in uses else use
    return tuple(uses.items())


def kind_fields(catalog: Catalog, spec: KindSpec) -> list[tuple[FieldUse, list[str]]]:
    """Every field any template of ``spec`` uses, with the templates that require it (file
    names), for ``herald templates fields``."""
    uses: dict[str, FieldUse] = {}
    requiring: dict[str, list[str]] = {}
    for channel, locales in spec.locales.items():
        for locale in sorted(locales):
            for name in template_names(spec, channel, locale):
                for field, use in _template_uses(catalog.root, name):
                    uses[field] = merge(uses[field], use) if field in uses else use
                    if use.required:
                        requiring.setdefault(field, []).append(name.split("/", 1)[1])
    return [(uses[f], requiring.get(f, [])) for f in sorted(uses)]


def format_problem(fmt: Format, value: Any) -> str | None:
    """Why ``value`` cannot be shown as ``fmt`` (None when it can)."""
    if fmt == "text":
        return None
    if fmt == "currency":
        ok = isinstance(value, str) and len(value) <= 8 and _is_currency(value)
        return None if ok else f"must be an ISO 4217 currency code such as CNY, got {value!r}"
    if fmt == "date":
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
                return None
            except ValueError:
                pass
        return f"must be an ISO date such as 2026-11-20, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"must be {'an amount' if fmt == 'amount' else 'a number'} such as 1234.50, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        return f"must be {'an amount' if fmt == 'amount' else 'a number'} such as 1234.50, got {value!r}"
    return None


def missing_or_malformed(
    catalog: Catalog, spec: KindSpec, channels: Iterable[Channel], locale: str, data: Mapping[str, Any]
) -> list[tuple[str | None, str]]:
    """``(field, message)`` for each field the reminder's templates need that ``data`` lacks
    (absent or null) or holds in a form its filter cannot show; ``(None, message)`` for a
    template that cannot be read (nothing of that kind can be rendered until it is fixed)."""
    problems: list[tuple[str | None, str]] = []
    needed: dict[str, tuple[FieldUse, list[str]]] = {}
    for channel in channels:
        try:
            uses = _uses_of(catalog.root, tuple(template_names(spec, channel, locale)))
        except (TemplateSyntaxError, OSError, UnicodeDecodeError) as exc:
            problems.append((None, f"the {spec.name} {channel} template cannot be read: {exc}"))
            continue
        for field, use in uses:
            if field in needed:
                needed[field] = (merge(needed[field][0], use), [*needed[field][1], channel])
            else:
                needed[field] = (use, [channel])
    for field, (use, channels_using) in needed.items():
        value = data.get(field)
        if value is None:
            if use.required:
                where = ", ".join(channels_using)
                problems.append((field, f"is required: the {spec.name} templates for {where} show it"))
            continue
        problem = format_problem(use.format, value)
        if problem is not None:
            problems.append((field, problem))
    return problems
