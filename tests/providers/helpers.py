"""Small builders for the provider tests: fresh recipients, one-channel reminders."""

from __future__ import annotations

import random
import uuid
from typing import Any

from tests.harness import make_reminder


def fresh_phone() -> str:
    """A valid Chinese mobile number no other test uses."""
    return f"+86138{random.randrange(10**8):08d}"


def fresh_email() -> str:
    return f"borrower.{uuid.uuid4().hex[:10]}@example.cn"


def fresh_token(prefix: str = "device") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def sms(phone: str, **overrides: Any) -> dict[str, Any]:
    reminder = make_reminder(channels=["sms"], **overrides)
    reminder["to"] = {"phone": phone, "locale": "zh-CN", "timezone": "Asia/Shanghai"}
    return reminder


def email(address: str, **overrides: Any) -> dict[str, Any]:
    reminder = make_reminder(channels=["email"], **overrides)
    reminder["to"] = {"email": address, "locale": "zh-CN", "timezone": "Asia/Shanghai"}
    return reminder


def push(*tokens: str, **overrides: Any) -> dict[str, Any]:
    reminder = make_reminder(channels=["push"], **overrides)
    reminder["to"] = {"push_tokens": list(tokens), "locale": "en", "timezone": "Asia/Shanghai"}
    return reminder
