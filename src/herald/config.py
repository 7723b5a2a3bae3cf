"""Settings: every HERALD_* environment variable herald reads, with its default.

The README's configuration table is this module in prose; keep them together.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.models import Channel
from herald.values.caps import parse_caps
from herald.values.ledger_urls import normalize_url
from herald.values.rates import parse_rate
from herald.values.redis_urls import is_sentinel, parse_sentinel
from herald.values.routes import parse_providers, parse_routes
from herald.values.windows import parse_window

MIN_SECRET_BYTES = 32
"""The shortest ``HERALD_SECRET_KEY`` herald accepts (256 bits, the HMAC-SHA256 key size)."""


class Settings(BaseSettings):
    """herald's configuration, read from the environment (prefix ``HERALD_``)."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    # -- Redis, templates, providers ---------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Broker and state: `redis://`, `rediss://`, `unix://`, or Redis Sentinel as kombu "
        "writes it, `sentinel://:PASSWORD@h1:26379/0;sentinel://h2:26379/0` (the password is the "
        "master's). Redis Cluster is not supported.",
    )
    redis_sentinel_master: str | None = Field(
        None, description="With a `sentinel://` URL: the master's name in `sentinel monitor` (required)."
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="With a `sentinel://` URL: the Sentinels' own password, if they have one."
    )
    templates_dir: Path = Field(Path("./templates"), description="The templates root.")
    outbox_dir: Path = Field(
        Path("./var/outbox"), description="Where the outbox provider writes `<channel>.jsonl`."
    )
    sms_provider: str = Field(
        "outbox",
        description="`outbox`, `twilio`, `aliyun`, or an ordered list (`aliyun,twilio`): the providers "
        "SMS may use, and the route of numbers `HERALD_SMS_ROUTES` names no rule for.",
    )
    sms_routes: str = Field(
        "",
        description="SMS routes by calling code: `86=aliyun,twilio;*=twilio` (first choice, then failover; "
        "`twilio:9,aliyun:1` splits traffic by weight). Every name must be in `HERALD_SMS_PROVIDER`.",
    )
    email_provider: str = Field("outbox", description="`outbox` or `smtp`.")
    push_provider: str = Field(
        "outbox",
        description="`outbox`, `fcm`, `apns`, or both (`fcm,apns`): each push token goes to its own "
        "service (`apns:` tokens to APNs, the others to FCM).",
    )
    twilio_account_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "HERALD_TWILIO_ACCOUNT_SID"),
        description="Twilio's account SID (`TWILIO_ACCOUNT_SID`, as Twilio's own tools name it).",
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "HERALD_TWILIO_AUTH_TOKEN"),
        description="Twilio's auth token (`TWILIO_AUTH_TOKEN`); it also checks the signature of its "
        "callbacks.",
    )
    twilio_from: str | None = Field(None, description="The sending number (E.164), or:")
    twilio_messaging_service_sid: str | None = Field(None, description="The Messaging Service that sends.")
    twilio_api_base: str = Field(
        "https://api.twilio.com", description="Twilio's REST base (a proxy, a regional edge, a test server)."
    )
    smtp_host: str | None = Field(None, description="The SMTP relay's host.")
    smtp_port: int = Field(587, description="The SMTP relay's port.")
    smtp_username: str | None = Field(None, description="SMTP AUTH user (none: no AUTH).")
    smtp_password: SecretStr | None = Field(None, description="SMTP AUTH password.")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="`none`, `starttls` or `tls` (implicit TLS)."
    )
    smtp_ca_file: Path | None = Field(
        None, description="A CA bundle the relay's certificate is checked against."
    )
    smtp_pool: int = Field(8, ge=1, le=100, description="SMTP connections per worker process.")
    email_from: str | None = Field(
        None, description="The sender, e.g. `Herald Credit <reminders@example.cn>`."
    )
    google_application_credentials: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "GOOGLE_APPLICATION_CREDENTIALS", "HERALD_GOOGLE_APPLICATION_CREDENTIALS"
        ),
        description="The FCM service account's JSON key (`GOOGLE_APPLICATION_CREDENTIALS`).",
    )
    fcm_project_id: str | None = Field(None, description="The Firebase project.")
    fcm_api_base: str = Field("https://fcm.googleapis.com", description="FCM HTTP v1's base URL.")
    aliyun_access_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ALIBABA_CLOUD_ACCESS_KEY_ID", "HERALD_ALIYUN_ACCESS_KEY_ID"),
        description="Aliyun's AccessKey ID (`ALIBABA_CLOUD_ACCESS_KEY_ID`, as Aliyun's SDKs name it).",
    )
    aliyun_access_key_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "HERALD_ALIYUN_ACCESS_KEY_SECRET"),
        description="Aliyun's AccessKey secret (`ALIBABA_CLOUD_ACCESS_KEY_SECRET`).",
    )
    aliyun_sms_endpoint: str = Field(
        "https://dysmsapi.aliyuncs.com", description="Aliyun SMS's API base (`dysmsapi`, 2017-05-25)."
    )
    aliyun_sign_name: str | None = Field(
        None, description="The approved SMS signature (`SignName`), e.g. `赫拉德信贷`."
    )
    aliyun_report_token: SecretStr | None = Field(
        None,
        description="The secret in the delivery-report URL given to Aliyun "
        "(`<HERALD_PUBLIC_URL>/v1/providers/aliyun/reports?token=...`); reports without it are refused.",
    )
    apns_key_file: Path | None = Field(None, description="The APNs signing key (`AuthKey_<id>.p8`).")
    apns_key_id: str | None = Field(None, description="That key's 10-character Key ID.")
    apns_team_id: str | None = Field(None, description="The Apple developer Team ID.")
    apns_topic: str | None = Field(None, description="The app's bundle ID (`apns-topic`).")
    apns_api_base: str = Field(
        "https://api.push.apple.com",
        description="APNs's base (`https://api.sandbox.push.apple.com` for development builds).",
    )
    apns_ca_file: Path | None = Field(
        None, description="A CA bundle APNs's certificate is checked against (default: the system's)."
    )
    breaker_window: float = Field(
        30.0, gt=0, le=3600, description="Seconds over which a provider's error rate is measured."
    )
    breaker_min_calls: int = Field(
        10, ge=1, description="Calls in that window before the error rate can open a provider's breaker."
    )
    breaker_error_rate: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of calls failing retryably or ambiguously that opens a provider's breaker.",
    )
    breaker_cooldown: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds an open breaker skips its provider (traffic goes to the next in the route).",
    )
    connect_timeout: float = Field(5.0, gt=0, le=120, description="Seconds to connect to a provider.")
    provider_timeout: float = Field(
        15.0, gt=0, le=300, description="Seconds to wait for a provider's answer once a request is sent."
    )

    # -- what may be sent, and when ------------------------------------------------------------
    public_url: str | None = Field(
        None,
        description="How providers and recipients reach `herald api` (Twilio callbacks, unsubscribe links).",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs unsubscribe links and the operator page's sessions: at least 32 bytes, the same "
        "for every process (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`).",
    )
    pay_url: str | None = Field(
        default=None,
        description="Payment link shown to borrowers; `{account}` is replaced by the account id.",
    )
    lender_name: str = Field(
        "Herald Credit", description="The brand in messages (the 【signature】 of Chinese SMS)."
    )
    send_window: str = Field(
        "08:00-22:00",
        description="Allowed local hours (the recipient's time zone) for collection contact; outside it a "
        "delivery waits for the next opening (checked again in the claim).",
    )
    caps: str = Field(
        "sms.collection=2/24h,1/4h;email.collection=3/24h;push.collection=3/24h",
        description="Frequency caps per channel and category, per account (contacts, not attempts).",
    )
    cap_action: Literal["defer", "drop"] = Field(
        "defer", description="Over a cap: `defer` (wait until allowed) or `drop` (outcome `capped`)."
    )
    duplicate_window: int = Field(
        6 * 3600,
        ge=0,
        description="Seconds in which a second reminder of the same kind to the same account and channel "
        "ends `duplicate` (0: off).",
    )
    default_timezone: str = Field(
        "Asia/Shanghai",
        description="A recipient's time zone when it gives none, and the zone people see times in.",
    )
    in_doubt_categories: str = Field(
        "collection,agreement,transactional",
        description="Categories whose ambiguous failures end `in_doubt` (the others are resent by policy).",
    )
    sms_max_segments: int = Field(5, ge=1, le=20, description="The longest SMS allowed, in segments.")

    # -- rates and retries ----------------------------------------------------------------------
    rate_sms: str = Field(
        "30/s", description="Cluster-wide SMS limit, e.g. `30/s`, `1000/m`, `5/10s`, `off` (in segments)."
    )
    rate_email: str = Field("50/s", description="Cluster-wide email limit.")
    rate_push: str = Field("500/s", description="Cluster-wide push limit (in devices).")
    rate_sms_burst: int | None = Field(
        None,
        ge=1,
        description="SMS units that may go at once (default: a tenth of a second's worth, at least 1).",
    )
    rate_email_burst: int | None = Field(None, ge=1, description="Emails that may go at once.")
    rate_push_burst: int | None = Field(None, ge=1, description="Push units that may go at once.")
    rate_sms_sender: str = Field(
        "",
        description="A further limit per sender number or Messaging Service, e.g. `1/s` for a US long code.",
    )
    rate_max_wait: float = Field(
        2.0,
        ge=0,
        le=60,
        description="Seconds a delivery may wait for its token in its send slot; longer waits go to the "
        "scheduler.",
    )
    quick_attempts: int = Field(
        3, ge=1, le=10, description="Attempts in the quick retry tier (each claimed again)."
    )
    quick_max_seconds: float = Field(8.0, ge=0, le=120, description="Seconds the quick tier may take in all.")
    retry_base: float = Field(
        30.0, gt=0, description="The scheduled retry tier's first delay, doubled each time (seconds)."
    )
    retry_max_delay: float = Field(1800.0, gt=0, description="The scheduled tier's longest delay (seconds).")
    retry_deadline: float = Field(
        6 * 3600.0, gt=0, description="Seconds after its first failure a delivery ends `dead`."
    )

    # -- workers, queues and recovery ----------------------------------------------------------
    visibility_timeout: int = Field(
        3600,
        ge=60,
        description="Seconds before the broker re-delivers an unacknowledged message, and how long a "
        "published message may wait in its queue before the reconciler presumes it lost.",
    )
    hold_seconds: int = Field(
        60,
        ge=10,
        le=3600,
        description="How long a worker process's hold on a delivery it took, or the lease of one it "
        "claimed, lasts unless renewed (every third of it while the process lives): a dead process's "
        "deliveries are back in work this long after its death.",
    )
    redis_patience: float | None = Field(
        None,
        ge=0,
        le=900,
        description="Seconds a worker waits out a Redis outage (or a full Redis) where it stands before "
        "giving up: 120, or an eighth of the visibility timeout if less (at most that eighth).",
    )
    intake_batch: int = Field(
        500, ge=1, le=5000, description="Reminders per intake batch, and delivery keys per intake message."
    )
    channel_batch: int = Field(100, ge=1, le=1000, description="Delivery keys per channel message.")
    direct_publish: int = Field(
        20,
        ge=0,
        le=1000,
        description="A producer call that accepts at most this many deliveries publishes them straight to "
        "their channel lanes, skipping `herald.intake`; 0: always through intake.",
    )
    in_flight: int = Field(200, ge=1, le=10000, description="Provider calls in flight per worker process.")
    worker_slots: int = Field(
        64, ge=1, le=1000, description="Messages (batches) each worker process works on at once."
    )
    scheduler_interval: float = Field(0.5, gt=0, le=60, description="Seconds between scheduler polls.")
    reconcile_rate: float = Field(
        200.0,
        gt=0,
        le=100_000,
        description="Keys a second `herald reconcile` may re-publish (one interval's worth a pass).",
    )
    reconcile_interval: float = Field(
        5.0, gt=0, le=300, description="Seconds between the reconciler's passes."
    )
    heartbeat_interval: float = Field(
        5.0, gt=0, le=300, description="Seconds between a worker process's heartbeats (expiring after three)."
    )
    health_stall: float = Field(
        120.0,
        gt=0,
        description="Seconds a backlog may wait with no worker taking a message before `/healthz` answers "
        "503.",
    )
    watchdog_stall: float = Field(
        120.0,
        ge=0,
        le=86400,
        description="Seconds a worker process may have messages waiting in its queues while taking none "
        "before it exits (75) for its supervisor to restart it; 0: off.",
    )

    # -- retention and the ledger --------------------------------------------------------------
    retention_days: int = Field(
        7, ge=1, description="Days reminder records and states are kept after their expiry."
    )
    compact_after: int = Field(
        3600,
        ge=0,
        le=86400,
        description="Seconds a finished delivery stays whole in Redis once the ledger has copied its "
        "outcome; then its state is folded into a one-line summary on its reminder's record and the "
        "reminder's body goes (idempotency and `herald status` keep working; the rest is in the ledger). "
        "In doubt and dead deliveries stay whole until an operator acts on them.",
    )
    events_maxlen: int = Field(
        1_000_000, ge=1000, description="Approximate length the `herald:events` stream is trimmed to."
    )
    ledger_url: str = Field(
        "sqlite:///./var/ledger.sqlite3",
        description="The durable ledger of outcomes, hold changes and opt-out changes: `sqlite:///path` or "
        "`postgresql://user:password@host/db` (psycopg 3).",
    )
    ledger_batch: int = Field(1000, ge=1, le=50_000, description="Stream entries per ledger transaction.")
    ledger_retention_days: int = Field(
        1830,
        ge=1,
        description="Days the ledger keeps rows (a hold or an opt-out still in force keeps its latest "
        "change).",
    )
    ledger_poll_interval: float = Field(
        1.0, gt=0, le=300, description="Seconds between two copies of a caught-up `herald ledger`."
    )

    # -- the API, metrics and Flower -------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Where `herald api` listens.")
    api_port: int = Field(8000, ge=1, le=65535, description="Its port.")
    api_max_batch: int = Field(
        1000, ge=1, le=100_000, description="Most reminders in one `POST /v1/reminders` array (more: 413)."
    )
    api_max_body: int = Field(
        32 * 2**20,
        ge=1024,
        description="Largest request body `herald api` reads, in bytes (larger: 413, nothing stored).",
    )
    metrics_port: int = Field(
        9808,
        ge=0,
        le=65535,
        description="Where `herald worker` serves the host's `/metrics` (its processes added up); 0: off.",
    )
    metrics_host: str = Field("127.0.0.1", description="The interface of that `/metrics`.")
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, every `/metrics` (worker host and API) requires `Authorization: Bearer "
        "<token>`.",
    )
    flower_user: str = Field(
        "herald", min_length=1, pattern=r"^[^:\s]+$", description="Flower's basic-auth user."
    )
    flower_password: SecretStr | None = Field(
        None, description="Flower's password; `herald flower` refuses to start without it."
    )
    flower_host: str = Field("127.0.0.1", description="Where Flower listens.")
    flower_port: int = Field(5555, ge=1, le=65535, description="Its port.")
    flower_read_only: bool = Field(True, description="Whether Flower forbids task and worker control.")

    @field_validator("sms_provider", "email_provider", "push_provider")
    @classmethod
    def _providers(cls, value: str, info: ValidationInfo) -> str:
        channel: Channel = info.field_name.split("_")[0]  # type: ignore[assignment,union-attr]
        names = parse_providers(channel, value)
        if channel == "email" and len(names) > 1:
            raise ValueError("email takes one provider")
        return ",".join(names)

    @model_validator(mode="after")
    def _routes(self) -> Settings:
        try:
            parse_routes(self.sms_routes, self.providers("sms"))
        except ValueError as exc:
            raise ValueError(f"sms_routes (HERALD_SMS_ROUTES): {exc}") from None
        return self

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_SECRET_BYTES} bytes: it signs unsubscribe links and operator "
                "sessions, and a short one can be guessed (generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
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
        parse_rate(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if is_sentinel(value):
            parse_sentinel(value)
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss://, unix:// or sentinel://")
        return value

    @model_validator(mode="after")
    def _sentinel_master(self) -> Settings:
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

    def providers(self, channel: Channel) -> tuple[str, ...]:
        """The providers ``channel`` may use, in order (``HERALD_<CHANNEL>_PROVIDER``)."""
        value = {"sms": self.sms_provider, "email": self.email_provider, "push": self.push_provider}[channel]
        return tuple(value.split(","))

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


def describe_settings_error(exc: ValidationError) -> str:
    """What is wrong with the environment, one line per setting, named as it is set
    (``HERALD_SEND_WINDOW: ...``): what a process says when it refuses to start."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        alias = field.validation_alias if field is not None else None
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"HERALD_{name.upper()}"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{env}: {message}")
    return "\n".join(lines)
