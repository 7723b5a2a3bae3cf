"""herald.rendering.fields: what a kind's templates need of ``data``, and intake refusing what they lack."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from herald.cli import app
from herald.intake.validation import ReminderInvalid, parse_reminder
from herald.models import CHANNELS
from herald.rendering.catalog import Catalog, load_catalog
from herald.rendering.fields import FieldUse, analyse, fields_of, format_problem, kind_fields


def _problems(raw: dict[str, Any], catalog: Catalog, now: datetime) -> dict[str, str]:
    with pytest.raises(ReminderInvalid) as info:
        parse_reminder(raw, catalog, now)
    return {e.field: e.message for e in info.value.errors}


def test_a_field_printed_plainly_is_required_and_shown_as_text() -> None:
    assert analyse("Hello {{ data.borrower_name }}") == {
        "borrower_name": FieldUse("borrower_name", required=True, format="text")
    }


def test_a_field_given_to_a_filter_takes_the_filters_format() -> None:
    uses = analyse(
        "{{ data.amount_due | money(data.currency) }} by {{ data['due'] | date }}, {{ data.n | number }}"
    )

    assert uses["amount_due"].format == "amount"
    assert uses["currency"].format == "currency"
    assert uses["due"] == FieldUse("due", required=True, format="date")
    assert uses["n"].format == "number"


def test_a_guarded_field_is_optional() -> None:
    uses = analyse(
        "{% if data.card is defined %}{{ data.card }}{% endif %}"
        "{{ data.nick | default('you') }} {{ data.get('extra', '') }}"
    )

    assert {n: u.required for n, u in uses.items()} == {"card": False, "extra": False, "nick": False}


def test_a_field_tested_for_truth_is_required_and_mapping_methods_are_not_fields() -> None:
    uses = analyse("{% if data.vip %}VIP{% endif %}{% for k, v in data.items() %}{{ k }}{% endfor %}")

    assert set(uses) == {"vip"}
    assert uses["vip"].required


def test_names_that_are_not_data_are_ignored() -> None:
    assert analyse("{{ lender.name }} {{ recipient.locale }} {{ links.pay }} {{ reminder.id }}") == {}


def test_included_templates_count_too(tmp_path: Path) -> None:
    kind = tmp_path / "notice"
    kind.mkdir()
    (kind / "kind.toml").write_text('category = "transactional"\n')
    (kind / "example.json").write_text('{"a": 1, "b": 2}')
    (kind / "footer.txt").write_text("Call {{ data.b }}")
    (kind / "sms.en.j2").write_text("{{ data.a }} {% include 'notice/footer.txt' %}")
    catalog = load_catalog(tmp_path)

    uses = fields_of(catalog, catalog.get("notice"), "sms", "en")

    assert set(uses) == {"a", "b"}
    assert uses["b"].required


def test_only_the_templates_of_the_reminders_channels_and_locale_count(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    # the English SMS of an overdue notice does not greet the borrower by name; the Chinese one does
    del wire["data"]["borrower_name"], wire["data"]["loan_ref"], wire["data"]["late_fee"]
    wire["channels"], wire["to"]["locale"] = ["sms"], "en"

    assert parse_reminder(wire, catalog, now).id == wire["id"]

    wire["to"]["locale"] = "zh-CN"
    assert _problems(wire, catalog, now) == {
        "data.borrower_name": "is required: the overdue_notice templates for sms show it"
    }


def test_a_missing_field_is_refused_at_intake_naming_it_and_its_channels(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    del wire["data"]["due_date"]
    wire["data"]["late_fee"] = None  # null is not a value a template can show

    problems = _problems(wire, catalog, now)

    assert problems == {
        "data.due_date": "is required: the overdue_notice templates for sms, email show it",
        "data.late_fee": "is required: the overdue_notice templates for email show it",
    }


def test_a_field_the_template_cannot_show_is_refused_naming_it(
    wire: dict[str, Any], catalog: Catalog, now: datetime
) -> None:
    wire["data"].update(amount_due="NaN", late_fee="12,00", currency="RMB", due_date="20/11/2026")

    problems = _problems(wire, catalog, now)

    assert set(problems) == {"data.amount_due", "data.late_fee", "data.currency", "data.due_date"}
    assert problems["data.amount_due"] == "must be an amount such as 1234.50, got 'NaN'"
    assert "ISO 4217" in problems["data.currency"]
    assert "ISO date" in problems["data.due_date"]


def test_an_optional_field_may_be_absent(catalog: Catalog, now: datetime) -> None:
    spec = catalog.get("repayment_due")
    data = spec.example_data(now.date())
    del data["debit_card_last4"]
    raw = {
        "id": "r-1",
        "account_id": "a-1",
        "kind": "repayment_due",
        "channels": ["sms"],
        "to": {"phone": "+8613800138000"},
        "data": data,
    }

    assert parse_reminder(raw, catalog, now).data == data


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("amount", ["1234.50", 12, 0.5, "-3"], ["NaN", "Infinity", "1,234.50", "", True, None, [1]]),
        ("date", ["2026-11-20", "2026-11-20T09:00:00+08:00"], ["2026/11/20", "tomorrow", 20261120]),
        ("currency", ["CNY", "USD"], ["cny", "RMB", "", 156]),
        ("text", ["x", 1, None], []),
    ],
)
def test_formats_accept_what_the_filters_show_and_nothing_else(
    fmt: Any, good: list[Any], bad: list[Any]
) -> None:
    assert [v for v in good if format_problem(fmt, v) is not None] == []
    assert [v for v in bad if format_problem(fmt, v) is None] == []


def test_every_kinds_example_passes_intake_on_every_channel_and_locale(
    catalog: Catalog, now: datetime
) -> None:
    for spec in catalog.kinds.values():
        for channel in CHANNELS:
            for locale in spec.locales.get(channel, ()):
                raw = {
                    "id": f"{spec.name}-{channel}-{locale}",
                    "account_id": "a-1",
                    "kind": spec.name,
                    "channels": [channel],
                    "to": {
                        "phone": "+8613800138000",
                        "email": "a@example.cn",
                        "push_tokens": ["t"],
                        "locale": locale,
                    },
                    "data": spec.example_data(now.date()),
                }
                parse_reminder(raw, catalog, now)


def test_kind_fields_lists_each_field_once_with_the_templates_that_require_it(catalog: Catalog) -> None:
    listed = {use.name: (use, where) for use, where in kind_fields(catalog, catalog.get("repayment_due"))}

    assert listed["debit_card_last4"] == (FieldUse("debit_card_last4", False, "text"), [])
    assert listed["amount_due"][0].format == "amount"
    assert "sms.zh-CN.j2" in listed["borrower_name"][1]
    assert "sms.en.j2" not in listed["borrower_name"][1]


def test_templates_fields_command_lists_a_kinds_fields(
    monkeypatch: pytest.MonkeyPatch, repo_root: Path, clean_env: None
) -> None:
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("COLUMNS", "160")

    shown = CliRunner().invoke(app, ["templates", "fields", "overdue_notice"])
    as_json = CliRunner().invoke(app, ["templates", "fields", "overdue_notice", "--json"])
    unknown = CliRunner().invoke(app, ["templates", "fields", "no_such_kind"])

    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.count("│") > 3}
    assert "sms (zh-CN), email" in rows["borrower_name"]
    assert "amount" in rows["amount_due"]
    assert "amount: a decimal amount such as 1234.50" in shown.stdout
    fields = {f["field"]: f for f in __import__("json").loads(as_json.stdout)["fields"]}
    assert fields["due_date"]["format"] == "date"
    assert fields["due_date"]["required"] is True
    assert unknown.exit_code == 2
    assert "unknown kind 'no_such_kind'" in unknown.stderr


def test_a_template_that_does_not_parse_refuses_its_kind_at_intake_naming_it(
    tmp_path: Path, now: datetime
) -> None:
    kind = tmp_path / "notice"
    kind.mkdir()
    (kind / "kind.toml").write_text('category = "transactional"\n')
    (kind / "example.json").write_text('{"a": 1}')
    (kind / "sms.en.j2").write_text("{{ data.a }} {% if %}")
    catalog = load_catalog(tmp_path)
    raw = {
        "id": "r-1",
        "account_id": "a-1",
        "kind": "notice",
        "channels": ["sms"],
        "to": {"phone": "+8613800138000", "locale": "en"},
        "data": {"a": 1},
    }

    problems = _problems(raw, catalog, now)

    assert list(problems) == ["kind"]
    assert problems["kind"].startswith("the notice sms template cannot be read:")
