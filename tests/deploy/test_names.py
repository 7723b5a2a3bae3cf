"""Every environment variable named in deploy/ is one herald reads, and every documented
process and setting the guides lean on exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.support import DEPLOY, HERALD_NAME, ROOT, deploy_files, setting_names

# Read outside Settings (herald.clock), and never set in production: deploy/ must not name them.
NOT_FOR_DEPLOYMENT = {"HERALD_CLOCK_OFFSET", "HERALD_CLOCK_OFFSET_FILE"}
# Aliases Settings accepts without the HERALD_ prefix (the providers' own names).
PROVIDER_NAMES = {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"}


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_herald_variable_named_in_deploy_is_a_setting(path: Path) -> None:
    text = path.read_text(errors="replace")
    named = set(HERALD_NAME.findall(text))
    known = setting_names()
    assert not named & NOT_FOR_DEPLOYMENT, f"{path.name} names test-only variables"
    assert named <= known, f"{path.name}: not herald settings: {sorted(named - known)}"


def test_provider_names_in_the_env_example_are_settings_aliases() -> None:
    text = (DEPLOY / "herald.env.example").read_text()
    named = {n for n in PROVIDER_NAMES if re.search(rf"(?m)^#?\s*{n}=", text)}
    assert named == PROVIDER_NAMES
    assert named <= setting_names()


def test_the_sentinel_settings_are_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("HERALD_REDIS_SENTINEL_MASTER", "HERALD_REDIS_SENTINEL_PASSWORD"):
        assert name in setting_names()
        assert name in readme or name in (ROOT / "docs" / "scaling.md").read_text(), name
