"""The sample reminders, delivered through the three real providers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.rendering.catalog import load_catalog
from herald.rendering.samples import sample_reminders
from tests.harness import Herald
from tests.providers.conftest import Providers

pytestmark = pytest.mark.integration


def test_every_sample_is_delivered_through_twilio_smtp_and_fcm(system: Herald, providers: Providers) -> None:
    catalog = load_catalog(system.root / "templates")
    samples = sample_reminders(catalog, datetime.now(UTC), run_id="real")
    results = system.producer().enqueue_many(samples)
    assert {r.status for r in results} == {"accepted"}
    for result in results:
        for key in result.deliveries:
            assert system.wait_outcome(key)["outcome"] == "sent", key
    assert len(providers.twilio.accepted) == len(samples)
    assert len(providers.smtp.messages) == len(samples)
    assert len(providers.fcm.accepted) == len(samples)
