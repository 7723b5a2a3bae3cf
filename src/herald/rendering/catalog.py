"""The template catalog: which kinds exist, their category, default expiry and templates.

Each kind is a folder ``templates/<kind>/`` holding ``kind.toml``, ``example.json`` and the
templates ``<channel>.<locale>.j2`` (plus ``email.<locale>.html.j2``). The category comes from
``kind.toml`` and nowhere else: it is never taken from the wire.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args

from herald.models import CHANNELS, Category, Channel

FALLBACK_LOCALE = "en"
"""The last step of every locale fallback."""

_TEMPLATE = re.compile(r"^(sms|push|email)\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\.j2$")
_HTML = re.compile(r"^email\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\.html\.j2$")


class CatalogError(ValueError):
    """A kind folder is missing or malformed."""


_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ApprovedSpec:
    """A provider's pre-approved SMS template for a kind (``[sms.<provider>]`` in
    ``kind.toml``): the template code per locale, each parameter as a small template rendered
    in the reminder's context, and the longest value the provider accepts for a parameter.

    Providers that send only approved text (Aliyun) get the code and the values; herald's own
    ``sms.<locale>.j2`` stays the copy that counts segments and shows previews."""

    provider: str
    codes: dict[str, str]
    params: dict[str, str]
    max_param_chars: int = 35

    def code_locale(self, locale: str) -> str | None:
        """The most specific locale with a code: zh-CN -> zh -> en (None when none)."""
        for candidate in (locale, locale.split("-")[0], FALLBACK_LOCALE):
            if candidate in self.codes:
                return candidate
        return None


@dataclass(frozen=True)
class KindSpec:
    """One kind of reminder as its folder describes it."""

    name: str
    category: Category
    description: str
    default_expiry: timedelta
    path: Path
    locales: dict[Channel, frozenset[str]] = field(default_factory=dict)
    example_dates: dict[str, int] = field(default_factory=dict)
    html_locales: frozenset[str] = frozenset()
    approved: dict[str, ApprovedSpec] = field(default_factory=dict)
    """Approved SMS templates by provider name (``[sms.aliyun]``)."""

    def template_locale(self, channel: Channel, locale: str) -> str | None:
        """The most specific locale with a ``channel`` template: zh-CN -> zh -> en (None when
        the kind has none of them)."""
        available = self.locales.get(channel, frozenset())
        for candidate in (locale, locale.split("-")[0], FALLBACK_LOCALE):
            if candidate in available:
                return candidate
        return None

    def example_data(self, today: date) -> dict[str, Any]:
        """``example.json`` with each ``[example.dates]`` field set to today plus its offset."""
        data: dict[str, Any] = json.loads((self.path / "example.json").read_text("utf-8"))
        for name, days in self.example_dates.items():
            data[name] = (today + timedelta(days=days)).isoformat()
        return data


@dataclass(frozen=True)
class Catalog:
    """Every kind under one templates root."""

    root: Path
    kinds: dict[str, KindSpec]

    def get(self, kind: str) -> KindSpec:
        """The kind named ``kind``; KeyError names the known kinds."""
        try:
            return self.kinds[kind]
        except KeyError:
            known = ", ".join(sorted(self.kinds)) or "none"
            raise KeyError(f"unknown kind {kind!r} (known: {known})") from None


def _load_kind(folder: Path) -> KindSpec:
    toml_path = folder / "kind.toml"
    try:
        meta = tomllib.loads(toml_path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{toml_path}: {exc}") from exc
    category: Category = meta.get("category")  # type: ignore[assignment]
    if category not in get_args(Category):
        raise CatalogError(f"{toml_path}: category must be one of {get_args(Category)}")
    hours = meta.get("default_expiry_hours", 72)
    if not isinstance(hours, int | float) or hours <= 0:
        raise CatalogError(f"{toml_path}: default_expiry_hours must be a positive number")
    dates = meta.get("example", {}).get("dates", {})
    if not all(isinstance(v, int) for v in dates.values()):
        raise CatalogError(f"{toml_path}: [example.dates] values must be whole days")
    approved = _approved(toml_path, meta.get("sms", {}))
    locales: dict[Channel, set[str]] = {}
    html: set[str] = set()
    for path in folder.iterdir():
        match = _TEMPLATE.match(path.name)
        if (html_match := _HTML.match(path.name)) is not None:
            html.add(html_match.group(1))
        elif match:
            channel: Channel = match.group(1)  # type: ignore[assignment]
            locales.setdefault(channel, set()).add(match.group(2))
    return KindSpec(
        name=folder.name,
        category=category,
        description=str(meta.get("description", "")),
        default_expiry=timedelta(hours=hours),
        path=folder,
        locales={c: frozenset(locales[c]) for c in CHANNELS if c in locales},
        example_dates=dict(dates),
        html_locales=frozenset(html),
        approved=approved,
    )


def _approved(toml_path: Path, tables: Any) -> dict[str, ApprovedSpec]:
    """The ``[sms.<provider>]`` tables of a ``kind.toml``, checked."""
    if not isinstance(tables, dict):
        raise CatalogError(f"{toml_path}: [sms] must be a table of providers, e.g. [sms.aliyun]")
    found: dict[str, ApprovedSpec] = {}
    for provider, table in tables.items():
        where = f"{toml_path}: [sms.{provider}]"
        if not isinstance(table, dict):
            raise CatalogError(f"{where} must be a table")
        codes = table.get("template_code", {})
        if (
            not isinstance(codes, dict)
            or not codes
            or not all(isinstance(v, str) and v.strip() for v in codes.values())
        ):
            raise CatalogError(
                f'{where}: template_code must map locales to codes, e.g. {{ zh-CN = "SMS_1" }}'
            )
        params = table.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise CatalogError(
                f'{where}: params must map names to templates, e.g. {{ name = "{{{{ data.x }}}}" }}'
            )
        bad = [name for name in params if not _PARAM_NAME.match(name)]
        if bad:
            raise CatalogError(f"{where}: {bad[0]!r} is not a parameter name (letters, digits, _)")
        limit = table.get("max_param_chars", 35)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise CatalogError(f"{where}: max_param_chars must be a whole number from 1 to 1000")
        unknown = set(table) - {"template_code", "params", "max_param_chars"}
        if unknown:
            raise CatalogError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        found[provider] = ApprovedSpec(
            provider, {k: v.strip() for k, v in codes.items()}, dict(params), limit
        )
    return found


def load_catalog(root: Path) -> Catalog:
    """Read every ``<kind>/kind.toml`` under ``root``."""
    if not root.is_dir():
        raise CatalogError(f"templates directory {root} does not exist (HERALD_TEMPLATES_DIR)")
    kinds = {
        folder.name: _load_kind(folder)
        for folder in sorted(root.iterdir())
        if (folder / "kind.toml").is_file()
    }
    return Catalog(root=root, kinds=kinds)


@lru_cache(maxsize=4)
def cached_catalog(root: Path) -> Catalog:
    """The catalog of ``root``, read once per process."""
    return load_catalog(root.resolve())
