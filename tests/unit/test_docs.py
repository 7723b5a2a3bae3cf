"""The manual stays true to the code: the configuration page is generated from the settings,
every setting named anywhere exists, and the README stays a front page."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from herald.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _render() -> str:
    render = runpy.run_path(str(ROOT / "scripts" / "configuration_page.py"))["render"]
    text: str = render()
    return text


def test_the_configuration_page_is_the_one_generated_from_the_settings() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    assert page == _render(), "docs/configuration.md is stale: run scripts/configuration_page.py"


def test_the_configuration_page_names_every_setting_with_its_meaning() -> None:
    page = _render()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"HERALD_{name.upper()}" in page or name in (
            "twilio_account_sid",
            "twilio_auth_token",
            "google_application_credentials",
            "aliyun_access_key_id",
            "aliyun_access_key_secret",
        )


def test_every_setting_the_manual_names_exists() -> None:
    known = {f"HERALD_{name.upper()}" for name in Settings.model_fields}
    known |= {
        "HERALD_CLOCK_OFFSET",
        "HERALD_CLOCK_OFFSET_FILE",
        "HERALD_PYTHON",
        "HERALD_CHROMIUM",
        "HERALD_FUZZ_EXAMPLES",
    }
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        (page.name, match)
        for page in pages
        for match in re.findall(r"HERALD_[A-Z0-9_]+[A-Z0-9]", page.read_text("utf-8"))
    }
    unknown = sorted((page, name) for page, name in named if name not in known and not name.endswith("_"))
    assert unknown == []


def test_the_readme_is_a_front_page_and_links_the_manual() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert len(readme.encode()) <= 12 * 1024
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"docs/{page.name}" in readme, f"the README does not link docs/{page.name}"
