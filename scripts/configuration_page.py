"""Write docs/configuration.md from herald's Settings: every setting, its meaning and default.

    .venv/bin/python scripts/configuration_page.py          # rewrite the page
    .venv/bin/python scripts/configuration_page.py --check  # exit 1 when the page is stale

The page is generated, never edited by hand: a test (tests/unit/test_docs.py) fails when it no
longer matches ``herald.config.Settings``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr

from herald.config import Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
HEADER = """# Configuration

Every setting is an environment variable (prefix `HERALD_`, except the providers' own names for
their credentials), read by every herald process at start. Every process must load the same
values; `deploy/herald.env.example` is the one file they share. Tests also use
`HERALD_CLOCK_OFFSET` / `HERALD_CLOCK_OFFSET_FILE` to move the clock of every herald process
together: never set them in production.

This page is generated from `herald.config.Settings` (`scripts/configuration_page.py`).

| variable | meaning | default |
| --- | --- | --- |
"""


def env_name(name: str, field: Any) -> str:
    """The environment variable a setting is read from."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"HERALD_{name.upper()}"


def default_text(value: Any) -> str:
    """A default as the table shows it."""
    if value is None or isinstance(value, SecretStr) or value == "":
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path) and not value.is_absolute():
        return f"`./{value.as_posix()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def render() -> str:
    """The whole page."""
    rows = []
    for name, field in Settings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{env_name(name, field)}` | {meaning} | {default_text(field.default)} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = PAGE.read_text("utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is stale: run scripts/configuration_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
