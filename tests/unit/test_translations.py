"""The pages' languages: every page string has its zh-CN translation, which keeps the string's
placeholders and markup; the language is chosen as a person expects."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from herald.display.i18n import choose, from_accept_language, speaker, supported
from tests.scripts import load_script

MESSAGES = load_script("messages")


def test_the_pages_strings_are_found_in_templates_python_and_the_unsubscribe_pages() -> None:
    found = {(m if isinstance(m, str) else m[0]): f for m, f, _ in MESSAGES.messages()}
    assert found["Overview"].endswith(".html")
    assert found["Hold added."].endswith("page.py")
    assert found["Stop reminder emails to %(address)s?"].endswith("unsubscribe.py")
    assert len(found) > 100


def test_every_page_string_has_a_zh_cn_translation() -> None:
    assert MESSAGES.untranslated("zh_CN") == []


def test_translations_keep_every_placeholder_and_tag() -> None:
    with MESSAGES.path("zh_CN").open("rb") as po:
        catalog = read_po(po, locale="zh_CN")
    slots = re.compile(r"%\(\w+\)s|\{\w+\}|<[^>]+>")
    for message in catalog:
        if message.id and isinstance(message.id, str):
            assert sorted(slots.findall(message.id)) == sorted(slots.findall(str(message.string))), message.id


def test_a_translated_page_string_reads_in_chinese_and_numbers_follow_the_locale() -> None:
    assert speaker("zh-CN")._("Overview") == "概览"
    assert speaker("en")._("Overview") == "Overview"
    assert speaker("zh-CN").number(1234567) == "1,234,567"


@pytest.mark.parametrize(
    ("query", "cookie", "header", "chosen"),
    [
        (None, None, None, "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, None, "zh-TW", "zh-CN"),  # Traditional readers read Simplified sooner than English
        (None, None, "fr-FR, en;q=0.5", "en"),
        (None, None, "en;q=0.2, zh;q=0.9", "zh-CN"),  # q-values, not order
        (None, None, "de, ja", "en"),
        (None, "zh-CN", "en", "zh-CN"),  # the switch sticks over the browser's wish
        ("en", "zh-CN", "zh-CN", "en"),  # the switch itself
        ("klingon", None, "zh", "zh-CN"),  # an unknown choice is ignored
        (None, "<script>", None, "en"),
    ],
)
def test_the_language_is_the_chosen_one_then_the_kept_one_then_the_browsers(
    query: str | None, cookie: str | None, header: str | None, chosen: str
) -> None:
    assert choose(query, cookie, header) == chosen


def test_odd_accept_language_headers_are_read_without_error() -> None:
    assert from_accept_language("zh;q=abc, en") == "en"
    assert from_accept_language(";;;,,,") is None
    assert from_accept_language("*") is None
    assert supported("zh_CN") == "zh-CN"
    assert supported("") is None
