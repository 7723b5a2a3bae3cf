"""Inbound SMS keywords: what a borrower's phone may send for STOP and START."""

from __future__ import annotations

import pytest

from herald.holds.optouts import keyword_action


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop. ",
        "ＳＴＯＰ",
        "退订",
        "\u200f退订\u200f",
        "\u202bTD\u202c",
        "\ufeffunsubscribe!",
        "ｔｄ。",
    ],
)
def test_opt_out_keywords_in_any_width_case_or_wrapping(body: str) -> None:
    assert keyword_action(body) == "out"


@pytest.mark.parametrize("body", ["START", "ＳＴＡＲＴ", "\u200eyes\u200e", "订阅"])
def test_opt_in_keywords_in_any_width_case_or_wrapping(body: str) -> None:
    assert keyword_action(body) == "in"


@pytest.mark.parametrize("body", ["please stop calling", "STOPP", "退订吗", "", "S T O P"])
def test_anything_else_is_no_keyword(body: str) -> None:
    assert keyword_action(body) is None
