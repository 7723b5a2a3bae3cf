"""Rendering reminders from ``templates/`` in a Jinja sandbox.

Templates are untrusted input: they run in Jinja's ``ImmutableSandboxedEnvironment`` (with a
bound on what one operation may build, see ``herald.rendering.sandbox``) with
``StrictUndefined`` (a missing variable is an error naming it, never a blank), and only
``email.<locale>.html.j2`` is autoescaped. Locales fall back from the most specific to the
language to English (zh-CN -> zh -> en).

Every template sees:

| name | what |
| --- | --- |
| ``data`` | the reminder's ``data`` object |
| ``reminder`` | ``id``, ``kind``, ``account``, ``category`` |
| ``recipient`` | ``locale``, ``timezone``, ``phone``, ``email`` |
| ``links`` | ``opt_out`` and ``pay`` URLs, each ``None`` when not configured |
| ``lender`` | ``name``: the lender's brand (``HERALD_LENDER_NAME``) |

Filters, in the recipient's locale: ``money(currency)`` (¥1,234.50), ``date`` (2026年11月20日 /
Nov 20, 2026), ``number``.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context

from herald.config import Settings
from herald.models import Channel
from herald.rendering.catalog import FALLBACK_LOCALE, Catalog
from herald.rendering.sandbox import BoundedSandbox
from herald.rendering.segments import SegmentCount, TooManySegments, check_segments


class RenderError(ValueError):
    """A template could not be rendered; the message names the file, line and cause."""


@dataclass(frozen=True)
class Approved:
    """A provider's approved template for one message: its code and the parameters' values."""

    code: str
    params: dict[str, str]


@dataclass(frozen=True)
class Rendered:
    """One channel's rendered content. Unused parts are empty strings."""

    channel: Channel
    locale: str
    text: str = ""
    title: str = ""
    subject: str = ""
    html: str = ""
    segments: SegmentCount | None = None
    approved: dict[str, Approved] = field(default_factory=dict)
    """For providers that send only approved templates (Aliyun): their code and values."""

    def content(self) -> dict[str, Any]:
        """The parts a provider sends, by name (only those this channel has)."""
        if self.channel == "sms":
            return {"text": self.text}
        if self.channel == "push":
            return {"title": self.title, "body": self.text}
        return {"subject": self.subject, "text": self.text, "html": self.html}


@lru_cache(maxsize=64)
def _babel_locale(locale: str) -> Locale:
    return Locale.parse(locale.replace("-", "_"))


def _locale_of(ctx: Context) -> Locale:
    recipient = ctx.get("recipient") or {}
    return _babel_locale(str(recipient.get("locale") or FALLBACK_LOCALE))


def _as_date(value: Any, tz: str | None) -> date:
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)).date() if tz and value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    try:
        if "T" in text:
            return _as_date(datetime.fromisoformat(text), tz)
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date filter: {text!r} is not an ISO date") from None


@pass_context
def _money(ctx: Context, amount: Any, currency: str) -> str:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():  # never "CN¥NaN.00" in a borrower's message
        raise ValueError(f"money filter: {amount!r} is not an amount")
    return str(format_currency(value, currency, locale=_locale_of(ctx)))


@pass_context
def _date(ctx: Context, value: Any, fmt: str = "medium") -> str:
    recipient = ctx.get("recipient") or {}
    return str(format_date(_as_date(value, recipient.get("timezone")), fmt, locale=_locale_of(ctx)))


@pass_context
def _number(ctx: Context, value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValueError(f"number filter: {value!r} is not a number")
    return str(format_decimal(number, locale=_locale_of(ctx)))


def make_environment(root: Path) -> BoundedSandbox:
    """The sandbox every herald template is rendered in."""
    env = BoundedSandbox(
        loader=FileSystemLoader(str(root)),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters.update(money=_money, date=_date, number=_number)
    return env


_MISSING = re.compile(r"has no attribute '([^']+)'|'([^']+)' is undefined")


def _explain(exc: BaseException, name: str) -> RenderError:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(name):
            line = frame.lineno
    where = f"{name}:{line}" if line else name
    if isinstance(exc, SecurityError):
        return RenderError(f"{where}: refused by the template sandbox: {exc}")
    message = str(exc)
    missing = _MISSING.search(message)
    if missing:
        message = f"missing variable {missing.group(1) or missing.group(2)!r} ({message})"
    return RenderError(f"{where}: {message}")


class Renderer:
    """Renders one kind on one channel for one recipient, with locale fallback."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self.env = make_environment(catalog.root)
        self._params: dict[tuple[str, str, str], Template] = {}

    def resolve_locale(self, kind: str, channel: Channel, locale: str) -> str:
        """The most specific locale with a template: zh-CN -> zh -> en."""
        resolved = self.catalog.get(kind).template_locale(channel, locale)
        if resolved is not None:
            return resolved
        raise RenderError(f"{kind} has no {channel} template for {locale} or {FALLBACK_LOCALE}")

    def context(self, reminder: dict[str, Any], category: str, opt_out: str | None = None) -> dict[str, Any]:
        """The template context of a stored reminder body (see the module docstring)."""
        to = reminder.get("to", {})
        pay = self.settings.pay_url
        return {
            "data": reminder.get("data", {}),
            "reminder": {
                "id": reminder["id"],
                "kind": reminder["kind"],
                "account": reminder["account_id"],
                "category": category,
            },
            "recipient": {
                "locale": to.get("locale", "zh-CN"),
                "timezone": to.get("timezone") or self.settings.default_timezone,
                "phone": to.get("phone"),
                "email": to.get("email"),
            },
            "links": {
                "opt_out": opt_out,
                "pay": pay.replace("{account}", reminder["account_id"]) if pay else None,
            },
            "lender": {"name": self.settings.lender_name},
        }

    def _template(self, name: str) -> Template:
        try:
            return self.env.get_template(name)
        except Exception as exc:  # loading compiles (and folds constants): report, never crash
            raise _explain(exc, name) from exc

    def _block(self, template: Template, block: str, context: dict[str, Any]) -> str:
        if block not in template.blocks:
            raise RenderError(f"{template.name}: has no {{% block {block} %}}")
        try:
            return "".join(template.blocks[block](template.new_context(context))).strip()
        except Exception:  # a template may raise anything; report it, never crash
            try:  # point the traceback at template lines, as Template.render does
                self.env.handle_exception()
            except Exception as exc:
                raise _explain(exc, str(template.name)) from exc
            raise

    def _whole(self, template: Template, context: dict[str, Any]) -> str:
        try:
            return template.render(context).strip()
        except Exception as exc:  # a template may raise anything; report it, never crash
            raise _explain(exc, str(template.name)) from exc

    def _param(self, kind: str, provider: str, name: str, source: str) -> Template:
        key = (kind, provider, name)
        template = self._params.get(key)
        if template is None:
            where = f"{kind}/kind.toml sms.{provider}.params.{name}"
            try:
                template = self.env.from_string(source)
            except Exception as exc:
                raise RenderError(f"{where}: {exc}") from exc
            template.name = where
            self._params[key] = template
        return template

    def approved(self, kind: str, provider: str, context: dict[str, Any]) -> Approved:
        """``provider``'s approved template for ``kind`` in the recipient's locale: the code
        and each parameter rendered; RenderError when the kind has none, no code for the
        locale, or a value that is empty or too long."""
        spec = self.catalog.get(kind).approved.get(provider)
        if spec is None:
            raise RenderError(
                f"{kind}/kind.toml: no sms.{provider} approved template (template_code, params)"
            )
        locale = context["recipient"]["locale"]
        code_locale = spec.code_locale(locale)
        if code_locale is None:
            raise RenderError(
                f"{kind}/kind.toml sms.{provider}.template_code: none for {locale} or {FALLBACK_LOCALE}"
            )
        values: dict[str, str] = {}
        for name, source in spec.params.items():
            template = self._param(kind, provider, name, source)
            value = " ".join(self._whole(template, context).split())
            if not value:
                raise RenderError(f"{template.name}: rendered empty")
            if len(value) > spec.max_param_chars:
                raise RenderError(
                    f"{template.name}: {len(value)} characters, over the {spec.max_param_chars} "
                    f"{provider} accepts for a parameter"
                )
            values[name] = value
        return Approved(spec.codes[code_locale], values)

    def render(
        self, kind: str, channel: Channel, context: dict[str, Any], approved: tuple[str, ...] = ()
    ) -> Rendered:
        """Render ``kind`` for ``channel``; raises RenderError naming the file and cause.
        ``approved`` names the providers (of an SMS) that also need their approved template."""
        locale = self.resolve_locale(kind, channel, context["recipient"]["locale"])
        base = f"{kind}/{channel}.{locale}"
        template = self._template(f"{base}.j2")
        if channel == "sms":
            text = self._whole(template, context)
            if not text:
                raise RenderError(f"{base}.j2: rendered an empty SMS")
            try:
                count = check_segments(text, self.settings.sms_max_segments)
            except TooManySegments as exc:
                raise RenderError(f"{base}.j2: {exc}") from exc
            extra = {name: self.approved(kind, name, context) for name in approved}
            return Rendered(channel, locale, text=text, segments=count, approved=extra)
        if channel == "push":
            title = self._block(template, "title", context)
            return Rendered(channel, locale, title=title, text=self._block(template, "body", context))
        subject = " ".join(self._block(template, "subject", context).split())
        text = self._block(template, "text", context)
        html = ""
        if locale in self.catalog.get(kind).html_locales:
            html = self._whole(self._template(f"{base}.html.j2"), context)
        return Rendered(channel, locale, subject=subject, text=text, html=html)
