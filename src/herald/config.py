"""Settings: every HERALD_* environment variable herald reads, with its default.

The README's configuration table is this module in prose; keep them together.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Settings(BaseSettings):
    """herald's configuration, read from the environment (prefix ``HERALD_``)."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # with a sentinel:// HERALD_REDIS_URL: the monitored master's name; the Sentinels' password
    redis_sentinel_master: str | None = None
    redis_sentinel_password: SecretStr | None = None
    templates_dir: Path = Path("./templates")
    outbox_dir: Path = Path("./var/outbox")

    sms_provider: Literal["outbox", "twilio"] = "outbox"
    email_provider: Literal["outbox", "smtp"] = "outbox"
    push_provider: Literal["outbox", "fcm"] = "outbox"

    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "HERALD_TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "HERALD_TWILIO_AUTH_TOKEN")
    )
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_ca_file: Path | None = None
    smtp_pool: int = Field(default=8, ge=1, le=100)
    email_from: str | None = None

    google_application_credentials: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "GOOGLE_APPLICATION_CREDENTIALS", "HERALD_GOOGLE_APPLICATION_CREDENTIALS"
        ),
    )
    fcm_project_id: str | None = None
    fcm_api_base: str = "https://fcm.googleapis.com"

    rate_sms: str = "30/s"
    rate_email: str = "50/s"
    rate_push: str = "500/s"

    public_url: str | None = None
    secret_key: SecretStr | None = None
    pay_url: str | None = Field(
        default=None,
        description="Payment link shown to borrowers; '{account}' is replaced by the account id.",
    )
    lender_name: str = "Herald Credit"

    send_window: str = "08:00-22:00"
    caps: str = "sms.collection=2/24h,1/4h;email.collection=3/24h;push.collection=3/24h"
    cap_action: Literal["defer", "drop"] = "defer"
    duplicate_window: int = Field(default=6 * 3600, ge=0)
    default_timezone: str = "Asia/Shanghai"

    visibility_timeout: int = Field(default=3600, ge=60)
    # How long a worker process's hold on a delivery (taken, or claimed: its lease) lasts unless
    # the process renews it; a dead process's deliveries are back in work this long after its death.
    hold_seconds: int = Field(default=60, ge=10, le=3600)
    intake_batch: int = Field(default=500, ge=1, le=5000)
    channel_batch: int = Field(default=100, ge=1, le=1000)
    direct_publish: int = Field(default=20, ge=0, le=1000)  # at most this many keys skip herald.intake
    in_flight: int = Field(default=200, ge=1, le=10000)
    worker_slots: int = Field(default=64, ge=1, le=1000)
    retention_days: int = Field(default=7, ge=1)
    sms_max_segments: int = Field(default=5, ge=1, le=20)
    events_maxlen: int = Field(default=1_000_000, ge=1000)
    scheduler_interval: float = Field(default=0.5, gt=0, le=60)
    rate_sms_burst: int | None = Field(default=None, ge=1)
    rate_email_burst: int | None = Field(default=None, ge=1)
    rate_push_burst: int | None = Field(default=None, ge=1)
    rate_sms_sender: str = ""
    rate_max_wait: float = Field(default=2.0, ge=0, le=60)
    redis_patience: float | None = Field(default=None, ge=0, le=900)

    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    provider_timeout: float = Field(default=15.0, gt=0, le=300)
    quick_attempts: int = Field(default=3, ge=1, le=10)
    quick_max_seconds: float = Field(default=8.0, ge=0, le=120)
    retry_base: float = Field(default=30.0, gt=0)
    retry_max_delay: float = Field(default=1800.0, gt=0)
    retry_deadline: float = Field(default=6 * 3600.0, gt=0)
    in_doubt_categories: str = "collection,agreement,transactional"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    metrics_port: int = Field(default=9808, ge=0, le=65535)  # herald worker's /metrics; 0: off
    metrics_host: str = "127.0.0.1"
    metrics_token: SecretStr | None = None  # bearer token for every /metrics, when set
    flower_user: str = Field(default="herald", min_length=1, pattern=r"^[^:\s]+$")
    flower_password: SecretStr | None = None
    flower_host: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_read_only: bool = True
    ledger_url: str = "sqlite:///./var/ledger.sqlite3"
    ledger_batch: int = Field(default=1000, ge=1, le=50_000)
    ledger_retention_days: int = Field(default=1830, ge=1)
    ledger_poll_interval: float = Field(default=1.0, gt=0, le=300)
    api_max_batch: int = Field(default=1000, ge=1, le=100_000)
    api_max_body: int = Field(default=32 * 2**20, ge=1024)  # bytes; larger request bodies get 413
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)
    health_stall: float = Field(default=120.0, gt=0)
    watchdog_stall: float = Field(default=120.0, ge=0, le=86400)  # a worker with work waiting exits; 0: off
    reconcile_rate: float = Field(default=200.0, gt=0, le=100_000)  # keys re-published per second
    reconcile_interval: float = Field(default=5.0, gt=0, le=300)

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _WINDOW.match(value):
            raise ValueError("must look like 08:00-22:00")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("caps")
    @classmethod
    def _caps(cls, value: str) -> str:
        from herald.caps import parse_caps

        parse_caps(value)
        return value

    @field_validator("public_url", "pay_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("ledger_url")
    @classmethod
    def _ledger_url(cls, value: str) -> str:
        from herald.ledger.urls import normalize_url

        return normalize_url(value)

    @field_validator("in_doubt_categories")
    @classmethod
    def _categories(cls, value: str) -> str:
        known = {"collection", "agreement", "transactional"}
        names = {c.strip() for c in value.split(",") if c.strip()}
        if names - known:
            raise ValueError(f"unknown categories {sorted(names - known)}; known: {sorted(known)}")
        return ",".join(sorted(names))

    @field_validator("rate_sms", "rate_email", "rate_push", "rate_sms_sender")
    @classmethod
    def _rate(cls, value: str) -> str:
        from herald.ratelimit import parse_rate

        parse_rate(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        from herald.redisconn import is_sentinel, parse_sentinel

        if is_sentinel(value):
            parse_sentinel(value)
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss://, unix:// or sentinel://")
        return value

    @model_validator(mode="after")
    def _sentinel_master(self) -> Settings:
        from herald.redisconn import is_sentinel

        if is_sentinel(self.redis_url) and not self.redis_sentinel_master:
            raise ValueError(
                "redis_sentinel_master (HERALD_REDIS_SENTINEL_MASTER) must name the master the "
                "Sentinels monitor when HERALD_REDIS_URL is a sentinel:// URL"
            )
        return self

    @model_validator(mode="after")
    def _patience_fits(self) -> Settings:
        if self.redis_patience is not None and self.redis_patience > self.visibility_timeout / 8:
            raise ValueError(
                f"redis_patience ({self.redis_patience:g} s) must stay under an eighth of "
                f"visibility_timeout ({self.visibility_timeout} s): a batch waits for Redis at most "
                "twice, and a task must end well inside the visibility timeout"
            )
        return self

    def in_doubt_for(self, category: str) -> bool:
        """Whether an ambiguous provider failure of this category ends ``in_doubt`` (else resent)."""
        return category in self.in_doubt_categories.split(",")

    @property
    def redis_wait(self) -> float:
        """How long a worker waits out a Redis outage in one batch (default: 120 s, at most
        an eighth of the visibility timeout)."""
        if self.redis_patience is not None:
            return self.redis_patience
        return min(120.0, self.visibility_timeout / 8)

    @property
    def stop_within(self) -> float:
        """Seconds a worker process takes at most to stop after SIGTERM (a warm shutdown):
        deliveries not claimed yet are handed back at once, and a claimed one finishes its
        request (a connection, then an answer, each under its timeout) and is recorded. 45 s by
        default: below systemd's default stop timeout of 90 s (deploy/ uses 75 s)."""
        return self.connect_timeout + 2 * self.provider_timeout + 10

    @property
    def lease_seconds(self) -> int:
        """How long a claimed delivery stays ``sending`` unless its worker renews the lease (it
        does while the request is in flight); then it is in doubt."""
        return self.hold_seconds


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
