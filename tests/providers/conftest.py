"""herald on its real providers (Twilio, SMTP, FCM) against local stand-ins.

One system for the session: the stand-ins, redis-server, a worker, the scheduler and the API,
configured with short timeouts and a short retry deadline so that every failure mode shows
within a test, and a shared clock file so that retries come due without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.ops.embedded import free_port
from tests.harness import Herald, running_herald
from tests.standins.apns import FakeAPNs
from tests.standins.fcm import FakeFCM
from tests.standins.smtp import FakeSMTP
from tests.standins.twilio import FakeTwilio

pytestmark = pytest.mark.integration

SENDER = "+15005550006"
SMTP_USER, SMTP_PASSWORD = "herald", "relay-password-123"


class Providers:
    """The stand-ins behind the running system."""

    def __init__(self, twilio: FakeTwilio, smtp: FakeSMTP, fcm: FakeFCM, apns: FakeAPNs) -> None:
        self.twilio = twilio
        self.smtp = smtp
        self.fcm = fcm
        self.apns = apns

    def reset(self) -> None:
        for fake in (self.twilio, self.smtp, self.fcm, self.apns):
            fake.reset()


@pytest.fixture(scope="session")
def providers() -> Iterator[Providers]:
    twilio = FakeTwilio()
    smtp = FakeSMTP(tls="starttls", username=SMTP_USER, password=SMTP_PASSWORD)
    fcm = FakeFCM(project_id="herald-test")
    apns = FakeAPNs()
    for fake in (twilio, smtp, fcm, apns):
        fake.start()
    try:
        yield Providers(twilio, smtp, fcm, apns)
    finally:
        for fake in (twilio, smtp, fcm, apns):
            fake.stop()


SHORT_WAITS = {
    "HERALD_CONNECT_TIMEOUT": "2",
    "HERALD_PROVIDER_TIMEOUT": "1.5",
    "HERALD_QUICK_ATTEMPTS": "3",
    "HERALD_QUICK_MAX_SECONDS": "2",
    "HERALD_RETRY_BASE": "60",
    "HERALD_RETRY_DEADLINE": "3600",
}
"""Timeouts and retry delays short enough that every failure mode shows within a test (the
retries come due by moving the clock, never by waiting)."""


def served_env(api_port: int) -> dict[str, str]:
    """The API on ``api_port`` (callbacks and links point at it), a secret key, short waits."""
    return {
        "HERALD_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "HERALD_API_PORT": str(api_port),
        "HERALD_SECRET_KEY": "test-secret-key-for-links-0123456789",
        **SHORT_WAITS,
    }


@pytest.fixture(scope="session")
def real(providers: Providers, tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    home = tmp_path_factory.mktemp("herald-real")
    api_port = free_port()
    env = {
        "HERALD_SMS_PROVIDER": "twilio",
        "HERALD_EMAIL_PROVIDER": "smtp",
        "HERALD_PUSH_PROVIDER": "fcm,apns",  # each token to its own service
        **providers.twilio.herald_env(SENDER),
        "HERALD_SMTP_HOST": providers.smtp.host,
        "HERALD_SMTP_PORT": str(providers.smtp.port),
        "HERALD_SMTP_TLS": "starttls",
        "HERALD_SMTP_CA_FILE": str(providers.smtp.cert_path),
        "HERALD_SMTP_USERNAME": SMTP_USER,
        "HERALD_SMTP_PASSWORD": SMTP_PASSWORD,
        "HERALD_EMAIL_FROM": "Herald Credit <reminders@herald-credit.example>",
        "GOOGLE_APPLICATION_CREDENTIALS": str(providers.fcm.write_service_account(home / "fcm-key.json")),
        "HERALD_FCM_PROJECT_ID": "herald-test",
        "HERALD_FCM_API_BASE": providers.fcm.url,
        "HERALD_APNS_KEY_FILE": str(providers.apns.write_key(home / "AuthKey_apns.p8")),
        "HERALD_APNS_KEY_ID": providers.apns.key_id,
        "HERALD_APNS_TEAM_ID": providers.apns.team_id,
        "HERALD_APNS_TOPIC": providers.apns.topic,
        "HERALD_APNS_API_BASE": providers.apns.url,
        "HERALD_APNS_CA_FILE": str(providers.apns.cert_path),
        **served_env(api_port),
    }
    with running_herald(home, repo_root, env, api=True) as system:
        yield system


@pytest.fixture
def system(real: Herald, providers: Providers) -> Iterator[Herald]:
    """The running system, stand-ins without faults, clock at real time after the test."""
    providers.reset()
    yield real
    providers.reset()
    real.shift_clock(0)
