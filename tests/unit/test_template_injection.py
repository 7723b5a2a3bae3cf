"""Template injection: the sandbox refuses escapes and runaway sizes; data is never a template.

Templates are reviewed files, but a kind's templates can be edited and a reminder's ``data`` is
untrusted. Every refusal is a ``RenderError`` naming the template file and line (the pipeline
records it as outcome ``invalid`` with that reason), never another exception. HTML in ``data``
is escaped in the email's HTML part and left as written in the plain-text parts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from herald.config import Settings
from herald.rendering.catalog import Catalog
from herald.rendering.renderer import Renderer, RenderError
from herald.rendering.samples import sample_context
from herald.rendering.sandbox import MAX_SIZE
from tests.unit.test_rendering_custom import Kind

WHERE = r"custom/sms\.en\.j2:1: "
REFUSED = WHERE + "refused by the template sandbox: "


@pytest.fixture
def kind(tmp_path: Path) -> Kind:
    return Kind(tmp_path / "templates")


def _refused(kind: Kind, source: str, data: dict[str, Any] | None = None) -> str:
    kind.write("sms.en.j2", source)
    with pytest.raises(RenderError) as info:
        kind.render("sms", data=data or {"name": "Li"})
    return str(info.value)


# --- escapes from the sandbox ------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ data.__class__.__base__.__subclasses__() }}",
        "{{ data.name.__class__.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ data|attr('__class__') }}",
        "{{ data.items.__self__ }}",
        "{{ recipient.get.__self__.__class__ }}",
        "{{ (data|selectattr('__class__')|list) }}",
    ],
)
def test_attribute_walks_are_refused(kind: Kind, source: str) -> None:
    message = _refused(kind, source)

    assert message.startswith("custom/sms.en.j2:1: refused by the template sandbox: access to attribute")
    assert "is unsafe" in message


@pytest.mark.parametrize(
    ("source", "data"),
    [
        ("{{ '{0.__class__}'.format(data) }}", None),
        ("{{ '{0.__class__.__mro__}'.format('') }}", None),
        ("{{ '{x.__class__.__init__.__globals__}'.format_map({'x': data}) }}", None),
        ("{{ '{0.__globals__}'.format(lipsum) }}", None),
        ("{{ '%s' % data.__class__ }}", None),
        # a format string that arrives in the reminder's data, used by a careless template
        ("{{ data.greeting.format(data) }}", {"greeting": "{0.__class__.__mro__}"}),
        ("{{ data.greeting.format_map({'r': recipient}) }}", {"greeting": "{r.__class__}"}),
    ],
)
def test_format_string_attacks_are_refused(kind: Kind, source: str, data: dict[str, Any] | None) -> None:
    message = _refused(kind, source, data)

    assert message.startswith("custom/sms.en.j2:1: refused by the template sandbox: access to attribute")


def test_templates_cannot_change_the_data_they_are_given(kind: Kind) -> None:
    message = _refused(kind, "{{ data.update({'amount_due': '0.00'}) }}{{ data.pop('name') }}")

    assert "refused by the template sandbox" in message
    assert "update" in message


# --- runaway sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["{% for i in range(10**9) %}x{% endfor %}", "{{ range(10**9) | list | length }}"],
)
def test_huge_ranges_are_refused(kind: Kind, source: str) -> None:
    message = _refused(kind, source)

    assert message.startswith("custom/sms.en.j2:1: Range too big")


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("{{ 'x' * 10**9 }}", "'*'"),
        ("{{ 10**9 * 'x' }}", "'*'"),
        ("{{ [data] * 10**9 }}", "'*'"),
        ("{{ 'x' ~ ('ab' * 10**8) }}", "'*'"),
        ("{{ 9 ** 999999999 }}", "'**'"),
        ("{{ 10 ** 1000000 }}", "'**'"),
        ("{{ '%0999999999d' % 1 }}", "'%' format"),
        ("{{ '%*d' % (10**9, 1) }}", "'%' format"),
        ("{{ '%0999999999d' | format(1) }}", "'%' format"),
        ("{{ '{:>999999999}'.format(1) }}", "format width"),
        ("{{ '{:>{w}}'.format(1, w=10**9) }}", "format spec"),
        ("{{ 'a'.center(10**9) }}", "str.center"),
        ("{{ 'a'.ljust(10**9) }}", "str.ljust"),
        ("{{ '7'.zfill(10**9) }}", "str.zfill"),
        ("{{ ('\t' * 1000).expandtabs(100000) }}", "str.expandtabs"),
        ("{{ ('y' * 100000).join(range(1000) | map('string')) }}", "join"),
        ("{{ ('x' * 1000) | join('y' * 100000) }}", "join"),
        ("{{ ('x' * 100000).replace('', 'x' * 100000) }}", "replace"),
        ("{{ ('x' * 100000) | replace('', 'yy') }}", "replace"),
        ("{{ 'x' | center(10**9) }}", "width"),
        ("{{ 'x' | indent(10**9) }}", "indent"),
        ("{{ range(10) | batch(10**9, 'x') | list }}", "linecount"),
        ("{{ range(10) | slice(10**9) | list }}", "slices"),
        ("{{ ('x' * 100000) | wordwrap(1, wrapstring='y' * 100000) }}", "wordwrap"),
        ("{{ [1] | tojson(10**9) }}", "tojson's indent"),
        ("{{ ('a' * 100000).translate({97: 'b' * 100000}) }}", "str.translate"),
    ],
)
def test_runaway_sizes_are_refused_before_they_are_built(kind: Kind, source: str, what: str) -> None:
    message = _refused(kind, source)

    assert message.startswith("custom/sms.en.j2:1: refused by the template sandbox: ")
    assert what in message


DOUBLING = (
    "{{% set ns = namespace(a={start}) %}}{{% for _ in range(40) %}}{{% set ns.a = ns.a {op} ns.a %}}"
    "{{% endfor %}}{{{{ ns.a|length }}}}"
)


@pytest.mark.parametrize(
    "source",
    [
        DOUBLING.format(start="'ab'", op="~"),
        DOUBLING.format(start="'ab'", op="+"),
        DOUBLING.format(start="[1]", op="+"),
        "{{ data.name ~ data.name ~ data.long }}",
    ],
)
def test_doubling_a_string_or_a_list_by_concatenation_is_refused_once_past_the_bound(
    kind: Kind, source: str
) -> None:
    message = _refused(kind, source, {"name": "Li", "long": "x" * (MAX_SIZE + 1)})

    assert message.startswith("custom/sms.en.j2:1: refused by the template sandbox: ")
    assert "'~'" in message or "'+'" in message
    assert f"the limit is {MAX_SIZE}" in message


def test_concatenation_within_the_bound_renders_as_usual(kind: Kind) -> None:
    kind.write("sms.en.j2", "{{ data.name ~ '-' ~ 3 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 1 + 2 }}")

    assert kind.render("sms", data={"name": "Li"}).text == "Li-3 ab [1, 2] 3"


def test_a_size_taken_from_untrusted_data_is_refused(kind: Kind) -> None:
    message = _refused(kind, "{{ data.name * data.times }}", {"name": "Li", "times": 10**9})

    assert message.startswith("custom/sms.en.j2:1: refused by the template sandbox: '*' would build")
    assert f"the limit is {MAX_SIZE}" in message


def test_operations_within_the_bounds_render_as_usual(kind: Kind) -> None:
    kind.write(
        "sms.en.j2",
        "{{ '%05d' % 42 }} {{ '{:,.2f}'.format(1234.5) }} {{ '-' * 3 }} {{ 2 ** 10 }} "
        "{{ ['a', 'b'] | join(', ') }} [{{ 'x' | center(5) }}] {{ range(3) | map('string') | join('') }} "
        "{{ 'a-b'.replace('-', '+') }} {{ '%s/%s' | format(1, 2) }} {{ [1, 2, 3] | batch(2) | list }}",
    )

    text = kind.render("sms").text

    assert text == "00042 1,234.50 --- 1024 a, b [  x  ] 012 a+b 1/2 [[1, 2], [3]]"


def test_refusal_inside_a_block_names_the_block_line(kind: Kind) -> None:
    kind.write(
        "email.en.j2",
        "{% block subject %}S{% endblock %}\n{% block text %}\n{{ 'x' * data.times }}{% endblock %}",
    )

    with pytest.raises(RenderError, match=r"custom/email\.en\.j2:3: refused by the template sandbox: '\*'"):
        kind.render("email", data={"times": 10**9})


# --- data is data, not template ----------------------------------------------------------

JINJA_IN_DATA = "{{ ''.__class__.__mro__ }}{% for i in range(10**9) %}x{% endfor %}{{ 7 * 7 }}{# c #}"


def test_jinja_syntax_in_data_is_shown_as_written_on_every_channel(kind: Kind) -> None:
    kind.write("sms.en.j2", "Hi {{ data.name }}")
    kind.write(
        "push.en.j2",
        "{% block title %}{{ data.name }}{% endblock %}{% block body %}{{ data.name }}{% endblock %}",
    )
    kind.write(
        "email.en.j2",
        "{% block subject %}{{ data.name }}{% endblock %}{% block text %}{{ data.name }}{% endblock %}",
    )
    kind.write("email.en.html.j2", "<p>{{ data.name }}</p>")
    data = {"name": JINJA_IN_DATA}

    sms = kind.render("sms", data=data)
    push = kind.render("push", data=data)
    email = kind.render("email", data=data)

    assert sms.text == f"Hi {JINJA_IN_DATA}"
    assert (push.title, push.text) == (JINJA_IN_DATA, JINJA_IN_DATA)
    assert (email.subject, email.text) == (JINJA_IN_DATA, JINJA_IN_DATA)
    assert email.html == f"<p>{escape(JINJA_IN_DATA)}</p>"
    assert "49" not in sms.text + push.text + email.text + email.html


def test_a_data_key_named_like_a_jinja_global_does_not_reach_the_globals(kind: Kind) -> None:
    kind.write("sms.en.j2", "{{ data.range }} {{ data['lipsum'] }} {{ data.self }}")

    text = kind.render("sms", data={"range": "{{ range(10**9) }}", "lipsum": "L", "self": "S"}).text

    assert text == "{{ range(10**9) }} L S"


# --- HTML in data ------------------------------------------------------------------------

HOSTILE = "<script>alert('x')</script>\"><img src=x onerror=alert(1)> & Tom's"
HOSTILE_ESCAPED = (
    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    "&#34;&gt;&lt;img src=x onerror=alert(1)&gt; &amp; Tom&#39;s"
)


def test_html_in_data_is_escaped_in_the_html_part_and_verbatim_in_text_parts(kind: Kind) -> None:
    kind.write("sms.en.j2", "SMS {{ data.note }}")
    kind.write(
        "push.en.j2",
        "{% block title %}{{ data.note }}{% endblock %}{% block body %}{{ data.note }}{% endblock %}",
    )
    kind.write(
        "email.en.j2",
        "{% block subject %}{{ data.note }}{% endblock %}{% block text %}{{ data.note }}{% endblock %}",
    )
    kind.write(
        "email.en.html.j2", '<p title="{{ data.note }}">{{ data.note }}</p><a href="{{ links.pay }}">pay</a>'
    )
    data = {"note": HOSTILE}

    email = kind.render("email", data=data, pay_url='https://pay.example/{account}?"><script>')
    sms = kind.render("sms", data=data)
    push = kind.render("push", data=data)

    assert email.html == (
        f'<p title="{HOSTILE_ESCAPED}">{HOSTILE_ESCAPED}</p>'
        '<a href="https://pay.example/acct-1?&#34;&gt;&lt;script&gt;">pay</a>'
    )
    assert "<script>" not in email.html
    assert (email.subject, email.text) == (HOSTILE, HOSTILE)
    assert sms.text == f"SMS {HOSTILE}"
    assert (push.title, push.text) == (HOSTILE, HOSTILE)


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_projects_email_templates_escape_html_in_data(
    catalog: Catalog, now: datetime, locale: str
) -> None:
    renderer = Renderer(
        catalog, Settings(templates_dir=catalog.root, pay_url=None, lender_name="Herald Credit")
    )
    for spec in catalog.kinds.values():
        if "email" not in spec.locales:
            continue
        sample = sample_context(spec, locale, now)
        name_field = next(k for k in sample["data"] if k.endswith("name"))
        sample["data"][name_field] = HOSTILE

        email = renderer.render(spec.name, "email", renderer.context(sample, spec.category))

        assert HOSTILE_ESCAPED in email.html, (spec.name, locale)
        assert "<script>" not in email.html, (spec.name, locale)
        assert HOSTILE in email.text, (spec.name, locale)
