"""herald.rendering.renderer.Renderer on a temporary templates folder: sandbox, errors, fallback, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from herald.config import Settings
from herald.models import Channel
from herald.rendering.catalog import load_catalog
from herald.rendering.renderer import Rendered, Renderer, RenderError

KIND = "custom"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Kind:
    """A kind folder under a temporary templates root, and a way to render it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / KIND
        self.folder.mkdir(parents=True)
        (self.folder / "kind.toml").write_text('category = "transactional"\n', "utf-8")
        (self.folder / "example.json").write_text("{}", "utf-8")

    def write(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text, "utf-8")

    def renderer(self, **settings: Any) -> Renderer:
        values: dict[str, Any] = {"templates_dir": self.root, "sms_max_segments": 5, "pay_url": None}
        return Renderer(load_catalog(self.root), Settings(**{**values, **settings}))

    def render(
        self, channel: Channel, locale: str = "en", data: dict[str, Any] | None = None, **settings: Any
    ) -> Rendered:
        renderer = self.renderer(**settings)
        stored = {
            "id": "r1",
            "kind": KIND,
            "account_id": "acct-1",
            "to": {"locale": locale, "timezone": "Asia/Shanghai"},
            "data": data or {},
        }
        return renderer.render(KIND, channel, renderer.context(stored, "transactional"))


@pytest.fixture
def kind(tmp_path: Path) -> Kind:
    return Kind(tmp_path / "templates")


# --- missing data ------------------------------------------------------------------------


def test_missing_data_field_names_variable_file_and_line(kind: Kind) -> None:
    kind.write("sms.en.j2", "Hello {{ data.name }},\nyour code is {{ data.code }}.\n")

    with pytest.raises(RenderError) as info:
        kind.render("sms", data={"name": "Li"})

    assert "custom/sms.en.j2:2" in str(info.value)
    assert "'code'" in str(info.value)


def test_missing_top_level_variable_is_an_error_not_a_blank(kind: Kind) -> None:
    kind.write("sms.en.j2", "Hi{{ nickname }}!")

    with pytest.raises(RenderError, match=r"custom/sms\.en\.j2:1: missing variable 'nickname'"):
        kind.render("sms")


def test_missing_variable_in_an_email_block_names_it_and_its_line(kind: Kind) -> None:
    kind.write(
        "email.en.j2", "{% block subject %}S{% endblock %}\n{% block text %}\n{{ data.gone }}\n{% endblock %}"
    )

    with pytest.raises(RenderError, match=r"custom/email\.en\.j2:3: missing variable 'gone'"):
        kind.render("email")


def test_missing_variable_in_a_push_block_reports_the_template_line(kind: Kind) -> None:
    kind.write(
        "push.en.j2", "{% block title %}T{% endblock %}\n{% block body %}\n\n{{ data.gone }}{% endblock %}"
    )

    with pytest.raises(RenderError, match=r"custom/push\.en\.j2:4: missing variable 'gone'"):
        kind.render("push")


def test_syntax_error_names_file_and_line(kind: Kind) -> None:
    kind.write("sms.en.j2", "fine\n{{ data.name ")

    with pytest.raises(RenderError, match=r"custom/sms\.en\.j2:2:"):
        kind.render("sms", data={"name": "x"})


@pytest.mark.parametrize(
    ("source", "data"),
    [
        ("{{ 1 / 0 }}", {}),
        ("{{ data.amount | money('CNY') }}", {"amount": "lots"}),
        ("{{ data.amount | money('CNY') }}", {"amount": "NaN"}),
        ("{{ data.amount | money('CNY') }}", {"amount": "Infinity"}),
        ("{{ data.amount | money('CNY') }}", {"amount": float("-inf")}),
        ("{{ data.count | number }}", {"count": "nan"}),
        ("{{ data.due | date }}", {"due": "next week"}),
    ],
)
def test_a_failing_expression_is_a_render_error(kind: Kind, source: str, data: dict[str, Any]) -> None:
    kind.write("sms.en.j2", source)

    with pytest.raises(RenderError, match=r"custom/sms\.en\.j2") as info:
        kind.render("sms", data=data)
    assert "NaN" not in str(info.value).replace("'NaN'", "").replace("'nan'", "")  # never rendered


# --- the sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ data.__class__ }}",
        "{{ data.__class__.__mro__[1].__subclasses__() }}",
        "{{ lender.name.__class__.__base__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ data.update({'x': 1}) }}",
    ],
)
def test_sandbox_refuses_attribute_walks(kind: Kind, source: str) -> None:
    kind.write("sms.en.j2", source)

    with pytest.raises(RenderError, match="refused by the template sandbox"):
        kind.render("sms")


def test_sandbox_refusal_inside_a_block_is_a_render_error(kind: Kind) -> None:
    source = "{% block title %}T{% endblock %}\n{% block body %}{{ data.__class__ }}{% endblock %}"
    kind.write("push.en.j2", source)

    with pytest.raises(RenderError, match=r"custom/push\.en\.j2:2: refused by the template sandbox"):
        kind.render("push")


def test_sandbox_refuses_huge_ranges(kind: Kind) -> None:
    kind.write("sms.en.j2", "{% for i in range(10**9) %}x{% endfor %}")

    with pytest.raises(RenderError, match=r"(?i)range"):
        kind.render("sms")


# --- locale fallback ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "chosen"),
    [
        (("zh",), "zh"),
        (("en",), "en"),
        (("zh", "en"), "zh"),
        (("zh-CN", "zh", "en"), "zh-CN"),
        (("zh-TW", "en"), "en"),
    ],
)
def test_zh_cn_falls_back_to_zh_then_en(kind: Kind, present: tuple[str, ...], chosen: str) -> None:
    for locale in present:
        kind.write(f"sms.{locale}.j2", f"from {locale}")

    rendered = kind.render("sms", locale="zh-CN")

    assert rendered.locale == chosen
    assert rendered.text == f"from {chosen}"


def test_locale_without_any_template_is_an_error(kind: Kind) -> None:
    kind.write("sms.fr.j2", "bonjour")

    with pytest.raises(RenderError, match="no sms template for zh-CN or en"):
        kind.render("sms", locale="zh-CN")


def test_channel_without_any_template_is_an_error(kind: Kind) -> None:
    kind.write("sms.en.j2", "hello")

    with pytest.raises(RenderError, match="no push template"):
        kind.render("push")


# --- email, push, sms shapes -------------------------------------------------------------


def test_html_part_is_escaped_and_text_part_is_verbatim(kind: Kind) -> None:
    kind.write(
        "email.en.j2",
        "{% block subject %}About {{ data.note }}{% endblock %}{% block text %}{{ data.note }}{% endblock %}",
    )
    kind.write("email.en.html.j2", "<p>{{ data.note }}</p>")
    note = "<script>alert(1)</script>"

    rendered = kind.render("email", data={"note": note})

    assert rendered.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert rendered.text == note
    assert rendered.subject == f"About {note}"


def test_email_without_html_template_has_no_html_part(kind: Kind) -> None:
    kind.write("email.en.j2", "{% block subject %}S{% endblock %}{% block text %}T{% endblock %}")

    assert kind.render("email").html == ""


def test_email_subject_is_folded_to_one_line(kind: Kind) -> None:
    kind.write(
        "email.en.j2",
        "{% block subject %}\n  Your   payment\n  is due\n{% endblock %}{% block text %}T{% endblock %}",
    )

    assert kind.render("email").subject == "Your payment is due"


def test_push_has_title_and_body(kind: Kind) -> None:
    kind.write(
        "push.en.j2",
        "{% block title %} Due soon {% endblock %}{% block body %}Pay {{ data.amount }}{% endblock %}",
    )

    rendered = kind.render("push", data={"amount": "800.00"})

    assert (rendered.title, rendered.text) == ("Due soon", "Pay 800.00")


def test_push_without_body_block_is_an_error(kind: Kind) -> None:
    kind.write("push.en.j2", "{% block title %}Due soon{% endblock %}")

    with pytest.raises(RenderError, match=re.escape("no {% block body %}")):
        kind.render("push")


def test_sms_over_the_segment_limit_is_an_error(kind: Kind) -> None:
    kind.write("sms.en.j2", "{{ data.body }}")

    assert kind.render("sms", data={"body": "x" * 160}, sms_max_segments=1).segments is not None
    with pytest.raises(RenderError, match=r"2 segments.*limit is 1"):
        kind.render("sms", data={"body": "x" * 161}, sms_max_segments=1)


def test_chinese_sms_segment_limit_counts_ucs2(kind: Kind) -> None:
    kind.write("sms.zh-CN.j2", "{{ data.body }}")

    assert kind.render("sms", locale="zh-CN", data={"body": "还" * 70}, sms_max_segments=1).text == "还" * 70
    with pytest.raises(RenderError, match=r"segments.*UCS-2"):
        kind.render("sms", locale="zh-CN", data={"body": "还" * 71}, sms_max_segments=1)


def test_empty_sms_is_an_error(kind: Kind) -> None:
    kind.write("sms.en.j2", "{% if false %}never{% endif %}   ")

    with pytest.raises(RenderError, match="empty SMS"):
        kind.render("sms")


def test_date_filter_uses_the_recipient_time_zone(kind: Kind) -> None:
    kind.write("sms.en.j2", "{{ data.when | date }}")
    when = datetime.now(UTC).replace(hour=20, minute=0, second=0, microsecond=0) + timedelta(days=3)
    local = when.astimezone(ZoneInfo("Asia/Shanghai")).date()

    rendered = kind.render("sms", data={"when": when.isoformat()})

    assert local != when.date()
    assert rendered.text == f"{MONTHS[local.month - 1]} {local.day}, {local.year}"
