"""The languages of herald's pages: English and Simplified Chinese (zh-CN), from Babel catalogs.

herald's operators are mostly Chinese-speaking, and the unsubscribe pages are read by borrowers:
both are shown in the language a person chose (``?lang=`` then a cookie that keeps the choice),
else the best match of the browser's ``Accept-Language``, else English.

The translations are ``herald/locale/<locale>/LC_MESSAGES/messages.po``, read as they are (no
compiled ``.mo`` to build or to forget to rebuild): Babel parses each once per process. Strings
are marked with ``_()``/``gettext()`` in Python and ``{% trans %}``/``_()`` in templates, and
``N_()`` where a string is defined before its language is known; ``scripts/messages.py``
extracts them and updates the catalog, and a test fails while any lacks its zh-CN translation.

Numbers are written in the locale's format (Babel). Times keep herald's one human format
(:mod:`herald.display.timefmt`): ISO-like, in ``HERALD_DEFAULT_TIMEZONE`` with the offset,
and the zone named; read alike in both languages, and exact when copied into a ticket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from io import BytesIO
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

LANGUAGES: dict[str, str] = {"en": "English", "zh-CN": "中文"}
"""The languages pages are offered in (BCP 47 tag -> its own name, as the switch shows it)."""
DEFAULT = "en"
COOKIE = "herald_lang"
"""The cookie that keeps a person's choice (a year; it names a language, nothing else)."""
COOKIE_AGE = 365 * 24 * 3600
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$")


def N_(message: str) -> str:
    """Mark ``message`` for translation where it is defined; it is translated where shown."""
    return message


def _babel_name(tag: str) -> str:
    return tag.replace("-", "_")


@cache
def translations(tag: str) -> NullTranslations:
    """The translations of language ``tag`` (English: none, the strings are English)."""
    if tag == DEFAULT:
        return NullTranslations()
    path = resources.files("herald") / "locale" / _babel_name(tag) / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=_babel_name(tag))
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def supported(tag: str | None) -> str | None:
    """``tag`` as one of :data:`LANGUAGES` (``zh``, ``zh_cn``, ``zh-Hans-CN`` -> ``zh-CN``), or None."""
    if not tag or not _TAG.match(tag):
        return None
    language = re.split(r"[-_]", tag, maxsplit=1)[0].lower()
    if language == "zh":
        # zh-TW and zh-HK readers get Simplified Chinese, which they read, rather than English
        return "zh-CN"
    return "en" if language == "en" else None


def from_accept_language(header: str | None) -> str | None:
    """The best of :data:`LANGUAGES` for an ``Accept-Language`` header (q-values honoured)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality > 0 and (found := supported(tag.strip())):
            ranked.append((-quality, position, found))
    return min(ranked)[2] if ranked else None


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The language of a page: the one asked for (``?lang=``), else kept (cookie), else the
    browser's, else English."""
    return supported(query) or supported(cookie) or from_accept_language(accept_language) or DEFAULT


@dataclass(frozen=True)
class Speaker:
    """What a page needs to speak ``tag``: its gettext functions for Python and for templates,
    and its number format."""

    tag: str

    def _(self, message: str) -> str:
        """``message`` in this language (``message`` itself where no translation exists)."""
        return str(translations(self.tag).gettext(message))

    def number(self, value: float) -> str:
        """``value`` in this language's number format (grouping, decimal sign)."""
        return format_decimal(value, locale=_babel_name(self.tag))

    def template_globals(self) -> dict[str, Any]:
        """``gettext``, ``ngettext`` and ``_`` as Jinja's i18n extension calls them (new style:
        variables passed by name and escaped in autoescaped templates), and ``number``."""
        speak = translations(self.tag)

        @pass_context
        def gettext(context: Context, message: str, **variables: Any) -> str:
            return _format(context, speak.gettext(message), variables)

        @pass_context
        def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
            variables.setdefault("num", num)
            return _format(context, speak.ngettext(singular, plural, num), variables)

        return {
            "gettext": gettext,
            "ngettext": ngettext,
            "_": gettext,
            "number": self.number,
            "lang": self.tag,
        }


def _format(context: Context, text: str, variables: dict[str, Any]) -> str:
    if context.eval_ctx.autoescape:
        # the message is the template's own text (or its reviewed translation), markup included,
        # as trusted as the template; the variables are escaped by Markup's %
        message = Markup(text)  # noqa: S704
        return message % variables if variables else message
    return text % variables if variables else text


def speaker(tag: str) -> Speaker:
    """The :class:`Speaker` of ``tag`` (one of :data:`LANGUAGES`)."""
    assert tag in LANGUAGES, tag
    return Speaker(tag)
