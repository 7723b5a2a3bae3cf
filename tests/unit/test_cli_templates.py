"""The ``herald templates check`` and ``herald preview`` commands, run in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from herald.cli import app


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch, repo_root: Path, clean_env: None) -> None:
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("COLUMNS", "160")


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_check_renders_every_template() -> None:
    result = _run("templates", "check")

    assert result.exit_code == 0, result.output
    assert "30 renderings, 0 errors" in result.stdout
    assert result.stderr == ""


def test_check_reports_chinese_sms_as_ucs2() -> None:
    result = _run("templates", "check")

    rows = [line.split("│") for line in result.stdout.splitlines() if line.count("│") > 2]
    cells = [[cell.strip() for cell in row] for row in rows]
    zh_sms = [row for row in cells if "sms" in row and "zh-CN" in row]
    assert len(zh_sms) == 5
    assert all("UCS-2" in row for row in zh_sms)
    en_sms = [row for row in cells if "sms" in row and "en" in row]
    assert all("GSM-7" in row for row in en_sms)


def test_check_fails_on_a_missing_variable(
    monkeypatch: pytest.MonkeyPatch, repo_root: Path, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(repo_root / "templates", templates)
    sms = templates / "overdue_notice" / "sms.en.j2"
    sms.write_text("{{ data.no_such_field }} " + sms.read_text("utf-8"), "utf-8")
    monkeypatch.setenv("HERALD_TEMPLATES_DIR", str(templates))

    result = _run("templates", "check")

    assert result.exit_code == 1
    assert "29 renderings, 1 errors" in result.stdout
    error = _one_line(result.stderr)
    assert "overdue_notice/sms.en.j2:1" in error
    assert "no_such_field" in error


def test_check_fails_on_a_missing_templates_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HERALD_TEMPLATES_DIR", str(tmp_path / "nowhere"))

    result = _run("templates", "check")

    assert result.exit_code == 2
    assert "does not exist" in _one_line(result.stderr)


def test_preview_prints_chinese_sms_whole() -> None:
    result = _run("preview", "overdue_notice", "--channel", "sms", "--locale", "zh-CN")

    assert result.exit_code == 0, result.output
    text = next(line for line in result.stdout.splitlines() if line.startswith("【"))
    assert "李伟" in text
    assert text.endswith("回复TD退订")
    assert "UCS-2" in result.stdout


def test_preview_english_email_shows_every_part() -> None:
    result = _run("preview", "overdue_notice", "--channel", "email", "--locale", "en")

    assert result.exit_code == 0, result.output
    for part in ("subject:", "text:", "html:"):
        assert part in result.stdout


def test_preview_of_unknown_kind_fails_clearly() -> None:
    result = _run("preview", "nope")

    assert result.exit_code == 2
    error = _one_line(result.stderr)
    assert "unknown kind 'nope'" in error
    assert "overdue_notice" in error


def test_preview_of_unknown_channel_fails_clearly() -> None:
    result = _run("preview", "overdue_notice", "--channel", "fax")

    assert result.exit_code == 2
    assert "--channel must be one of sms, email, push" in _one_line(result.stderr)


def _copy(repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    templates = tmp_path / "templates"
    shutil.copytree(repo_root / "templates", templates)
    monkeypatch.setenv("HERALD_TEMPLATES_DIR", str(templates))
    return templates


def test_check_shows_the_approved_template_codes_of_a_configured_aliyun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_SMS_PROVIDER", "aliyun,twilio")

    result = _run("templates", "check")

    assert result.exit_code == 0, result.output
    assert "aliyun code" in result.stdout
    assert "SMS_480210041" in result.stdout  # overdue_notice, zh-CN


def test_check_refuses_a_kind_without_an_aliyun_code_for_one_of_its_locales(
    monkeypatch: pytest.MonkeyPatch, repo_root: Path, tmp_path: Path
) -> None:
    templates = _copy(repo_root, tmp_path, monkeypatch)
    toml = templates / "overdue_notice" / "kind.toml"
    toml.write_text(toml.read_text("utf-8").replace(', en = "SMS_480210042"', ""), "utf-8")

    assert _run("templates", "check").exit_code == 0  # Aliyun is not configured: not checked
    result = _run("templates", "check", "--provider", "aliyun")

    assert result.exit_code == 1
    assert "29 renderings, 1 errors" in result.stdout
    assert "overdue_notice/kind.toml sms.aliyun.template_code: none for en" in _one_line(result.stderr)


def test_check_refuses_an_aliyun_parameter_that_names_missing_data_or_runs_too_long(
    monkeypatch: pytest.MonkeyPatch, repo_root: Path, tmp_path: Path
) -> None:
    templates = _copy(repo_root, tmp_path, monkeypatch)
    toml = templates / "repayment_due" / "kind.toml"
    toml.write_text(toml.read_text("utf-8").replace("{{ data.borrower_name }}", "{{ data.borrower_nmae }}"))
    toml = templates / "overdue_notice" / "kind.toml"
    toml.write_text(
        toml.read_text("utf-8").replace("{{ data.service_phone }}", "{{ data.service_phone * 10 }}")
    )
    monkeypatch.setenv("HERALD_SMS_PROVIDER", "aliyun")

    result = _run("templates", "check")

    assert result.exit_code == 1
    assert "26 renderings, 4 errors" in result.stdout
    error = _one_line(result.stderr)
    assert "repayment_due/kind.toml sms.aliyun.params.name: missing variable 'borrower_nmae'" in error
    assert (
        "overdue_notice/kind.toml sms.aliyun.params.phone: 50 characters, over the 35 aliyun accepts" in error
    )


def test_check_refuses_an_unknown_provider_name() -> None:
    result = _run("templates", "check", "--provider", "aliyn")

    assert result.exit_code != 0
    assert "no provider named 'aliyn'" in _one_line(result.stderr)
