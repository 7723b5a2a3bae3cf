"""Extract the strings of herald's pages and merge them into each language's catalog.

    .venv/bin/python scripts/messages.py          # update src/herald/locale/*/LC_MESSAGES/messages.po
    .venv/bin/python scripts/messages.py --check  # exit 1 naming every string without a translation

The pages are the operator page (its templates and the Python that words its notices) and the
unsubscribe pages. New strings arrive in each catalog untranslated; strings no longer used are
dropped. Translate them in the .po file (any PO editor works); tests/unit/test_translations.py
fails while a page string lacks its zh-CN translation.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "herald"
LOCALES = SOURCE / "locale"
LANGUAGES = ("zh_CN",)
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
METHODS = [
    ("api/operator/templates/**.html", "jinja2"),
    ("api/operator/**.py", "python"),
    ("api/unsubscribe.py", "python"),
    ("holds/holdcsv.py", "python"),  # a hold's field errors, shown on the operator page
]
OPTIONS = {"api/operator/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def messages() -> Iterator[tuple[str | tuple[str, ...], str, int]]:
    """Every page string: (message id, or singular and plural; the file; the line)."""
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(SOURCE), METHODS, options_map=OPTIONS, keywords=KEYWORDS
    ):
        yield message, filename, lineno


def template() -> Catalog:
    """The strings as a catalog template (``.pot``)."""
    catalog = Catalog(project="herald", charset="utf-8")
    for message, filename, lineno in messages():
        catalog.add(message, locations=[(filename, lineno)])
    return catalog


def path(language: str) -> Path:
    """Where ``language``'s catalog lives."""
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


def untranslated(language: str) -> list[str]:
    """The page strings ``language``'s catalog has no (or only a fuzzy) translation of."""
    with path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    missing = []
    for message, _, _ in messages():
        key = message if isinstance(message, str) else message[0]
        entry = catalog.get(key)
        strings = entry.string if entry is not None else None
        done = strings and (all(strings) if isinstance(strings, tuple) else strings.strip())
        if entry is None or entry.fuzzy or not done:
            missing.append(key)
    return sorted(set(missing))


def update() -> None:
    """Merge the strings into every catalog (new ones untranslated, gone ones dropped)."""
    pot = template()
    for language in LANGUAGES:
        target = path(language)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            with target.open("rb") as po:
                catalog = read_po(po, locale=language)
        else:
            catalog = Catalog(locale=language, project="herald", charset="utf-8")
        catalog.update(pot, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.fuzzy = False
        catalog.header_comment = (
            f"# herald's pages in {language}: scripts/messages.py keeps this file in step with the pages."
        )
        with target.open("wb") as po:
            write_po(po, catalog, width=0, omit_header=False, sort_output=True, include_lineno=False)
        print(
            f"{target.relative_to(ROOT)}: {len(catalog)} strings, {len(untranslated(language))} untranslated"
        )


def main() -> int:
    """Update the catalogs, or with ``--check`` list what lacks a translation."""
    if "--check" in sys.argv[1:]:
        missing = {lang: untranslated(lang) for lang in LANGUAGES}
        for lang, keys in missing.items():
            for key in keys:
                print(f"{lang}: no translation of {key!r}")
        return 1 if any(missing.values()) else 0
    update()
    return 0


if __name__ == "__main__":
    sys.exit(main())
