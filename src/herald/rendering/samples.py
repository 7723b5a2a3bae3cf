"""Sample reminders built from each kind's ``example.json``, always relative to now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from herald.models import CHANNELS
from herald.rendering.catalog import Catalog, KindSpec

SAMPLE_TO: dict[str, dict[str, Any]] = {
    "zh-CN": {
        "phone": "+8613800138000",
        "email": "li.wei@example.cn",
        "push_tokens": ["sample-device-token-zh-0001"],
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
    },
    "en": {
        "phone": "+14155550123",
        "email": "alex.chen@example.com",
        "push_tokens": ["sample-device-token-en-0001"],
        "locale": "en",
        "timezone": "America/Los_Angeles",
    },
}


def sample_context(spec: KindSpec, locale: str, now: datetime) -> dict[str, Any]:
    """A stored-reminder-shaped dict for rendering ``spec`` in ``locale`` (for checks)."""
    to = SAMPLE_TO.get(locale, {**SAMPLE_TO["en"], "locale": locale})
    today = now.astimezone(ZoneInfo(to["timezone"])).date()
    return {
        "id": f"example-{spec.name}",
        "account_id": "acct-example",
        "kind": spec.name,
        "to": to,
        "data": spec.example_data(today),
    }


def sample_reminders(catalog: Catalog, now: datetime, run_id: str) -> list[dict[str, Any]]:
    """One reminder per kind and sample locale, on every channel the kind has templates for."""
    reminders = []
    for spec in catalog.kinds.values():
        for locale, to in SAMPLE_TO.items():
            today = now.astimezone(ZoneInfo(to["timezone"])).date()
            reminders.append(
                {
                    "id": f"sample-{run_id}-{spec.name}-{locale}",
                    # one account per sample and run: one borrower gets one notice, within every
                    # cap and duplicate window, however often the samples run on the same Redis
                    "account_id": f"acct-sample-{run_id}-{spec.name.replace('_', '-')}-{locale.lower()}",
                    "kind": spec.name,
                    "channels": [c for c in CHANNELS if c in spec.locales],
                    "to": to,
                    "data": spec.example_data(today),
                    "expires_at": (now + timedelta(hours=6)).isoformat(),
                }
            )
    return reminders
