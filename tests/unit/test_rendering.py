"""herald.rendering.renderer.Renderer on the project's own templates, with their example data."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from herald.config import Settings
from herald.models import CHANNELS, Channel
from herald.rendering.catalog import Catalog
from herald.rendering.renderer import Rendered, Renderer
from herald.rendering.samples import SAMPLE_TO, sample_context

KINDS = ("overdue_notice", "repayment_due", "installment_due", "agreement_confirmed", "early_warning")
LOCALES = ("zh-CN", "en")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _settings(templates: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "templates_dir": templates,
        "pay_url": None,
        "lender_name": "Herald Credit",
        "sms_max_segments": 5,
        "default_timezone": "Asia/Shanghai",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def renderer(catalog: Catalog) -> Renderer:
    return Renderer(catalog, _settings(catalog.root))


def _render(
    renderer: Renderer, kind: str, channel: Channel, locale: str, now: datetime
) -> tuple[Rendered, dict[str, Any]]:
    spec = renderer.catalog.get(kind)
    sample = sample_context(spec, locale, now)
    return renderer.render(kind, channel, renderer.context(sample, spec.category)), sample["data"]


def _today(locale: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(SAMPLE_TO[locale]["timezone"])).date()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_on_every_channel(
    renderer: Renderer, now: datetime, kind: str, channel: Channel, locale: str
) -> None:
    rendered, _ = _render(renderer, kind, channel, locale, now)

    assert rendered.channel == channel
    assert rendered.locale == locale
    parts = rendered.content()
    assert (
        set(parts)
        == {"sms": {"text"}, "push": {"title", "body"}, "email": {"subject", "text", "html"}}[channel]
    )
    for name, value in parts.items():
        assert value.strip(), f"{name} is empty"
        assert "{{" not in value
        assert "{%" not in value
    assert (rendered.segments is not None) == (channel == "sms")


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("kind", KINDS)
def test_chinese_text_is_never_substituted(
    renderer: Renderer, now: datetime, kind: str, channel: Channel
) -> None:
    rendered, _ = _render(renderer, kind, channel, "zh-CN", now)

    for value in rendered.content().values():
        assert "?" not in value
        assert "\ufffd" not in value


@pytest.mark.parametrize("kind", KINDS)
def test_chinese_sms_is_ucs2_with_name_amount_and_date(renderer: Renderer, now: datetime, kind: str) -> None:
    rendered, data = _render(renderer, kind, "sms", "zh-CN", now)

    assert rendered.segments is not None
    assert rendered.segments.encoding == "UCS-2"
    assert data["borrower_name"] in rendered.text
    assert re.search(r"¥\d{1,3}(,\d{3})*\.\d{2}", rendered.text)
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", rendered.text)


def test_overdue_sms_in_chinese_formats_amount_and_due_date(renderer: Renderer, now: datetime) -> None:
    rendered, data = _render(renderer, "overdue_notice", "sms", "zh-CN", now)
    due = _today("zh-CN", now) - timedelta(days=9)

    assert data["due_date"] == due.isoformat()
    assert f"¥{Decimal(data['amount_due']):,.2f}" in rendered.text
    assert f"{due.year}年{due.month}月{due.day}日" in rendered.text
    assert due.isoformat() not in rendered.text


def test_overdue_sms_in_english_uses_medium_dates(renderer: Renderer, now: datetime) -> None:
    rendered, _ = _render(renderer, "overdue_notice", "sms", "en", now)
    due = _today("en", now) - timedelta(days=9)

    assert f"{MONTHS[due.month - 1]} {due.day}, {due.year}" in rendered.text
    assert due.isoformat() not in rendered.text
    assert rendered.segments is not None
    assert rendered.segments.encoding == "GSM-7"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_push_has_a_one_line_title_and_a_body(
    renderer: Renderer, now: datetime, kind: str, locale: str
) -> None:
    rendered, _ = _render(renderer, kind, "push", locale, now)

    assert rendered.title
    assert "\n" not in rendered.title
    assert rendered.text
    assert rendered.content() == {"title": rendered.title, "body": rendered.text}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_email_has_one_line_subject_and_html(
    renderer: Renderer, now: datetime, kind: str, locale: str
) -> None:
    rendered, _ = _render(renderer, kind, "email", locale, now)

    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.html.lstrip().lower().startswith("<!doctype html>")


def test_pay_link_names_the_account(catalog: Catalog, now: datetime) -> None:
    renderer = Renderer(catalog, _settings(catalog.root, pay_url="https://pay.example.com/{account}"))

    rendered, _ = _render(renderer, "overdue_notice", "sms", "en", now)

    assert "https://pay.example.com/acct-example" in rendered.text


def test_context_exposes_reminder_recipient_links_and_lender(catalog: Catalog) -> None:
    renderer = Renderer(catalog, _settings(catalog.root, lender_name="Acme Loans"))
    stored = {
        "id": "r1",
        "kind": "overdue_notice",
        "account_id": "acct-7",
        "to": {"locale": "en"},
        "data": {"a": 1},
    }

    context = renderer.context(stored, "collection")

    assert context["data"] == {"a": 1}
    assert context["reminder"] == {
        "id": "r1",
        "kind": "overdue_notice",
        "account": "acct-7",
        "category": "collection",
    }
    assert context["recipient"]["timezone"] == "Asia/Shanghai"
    assert context["links"] == {"opt_out": None, "pay": None}
    assert context["lender"] == {"name": "Acme Loans"}
