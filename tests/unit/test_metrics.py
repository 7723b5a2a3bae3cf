"""Metrics recorded by the pipeline and providers, the /metrics app, the supervisor's hook."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from herald import instruments as metrics
from herald.channels.base import AmbiguousError, Message, Provider, SendResult
from herald.config import Settings
from herald.ops.metrics_server import HostMetrics, metrics_app, token_ok
from herald.ops.supervise import Supervisor


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_recorded_outcome_increments_its_channel_and_outcome() -> None:
    before = value("herald_outcomes_total", channel="sms", outcome="suppressed")
    other = value("herald_outcomes_total", channel="email", outcome="suppressed")
    metrics.record_outcome("acct-1-overdue-2026-11-20:sms", "suppressed")
    metrics.record_outcome("acct-2-overdue-2026-11-20:sms", "suppressed")
    assert value("herald_outcomes_total", channel="sms", outcome="suppressed") == before + 2
    assert value("herald_outcomes_total", channel="email", outcome="suppressed") == other


def test_retries_and_limiter_are_counted_by_channel() -> None:
    quick = value("herald_retries_total", channel="push", tier="quick")
    waits = value("herald_limiter_wait_seconds_count", channel="push")
    slow = value("herald_limiter_wait_seconds_bucket", channel="push", le="1.0")
    deferred = value("herald_limiter_deferred_total", channel="push")
    metrics.record_retry("r-1:push", "quick")
    metrics.record_limiter("push", [0.0, 0.3, 1.5], deferred=2)
    assert value("herald_retries_total", channel="push", tier="quick") == quick + 1
    assert value("herald_limiter_wait_seconds_count", channel="push") == waits + 3
    assert value("herald_limiter_wait_seconds_bucket", channel="push", le="1.0") == slow + 2
    assert value("herald_limiter_deferred_total", channel="push") == deferred + 2


def test_a_metrics_failure_never_reaches_the_delivery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_warned", set())  # as in a fresh process: no failure logged yet
    before = value("herald_outcomes_total", channel="sms", outcome="sent")
    with caplog.at_level(logging.ERROR, logger="herald.ops.metrics"):
        metrics.record_outcome("not a delivery key", "sent")  # no channel in it: nothing counted
        metrics.record_outcome("still not a key", "sent")
    assert value("herald_outcomes_total", channel="sms", outcome="sent") == before
    assert len([r for r in caplog.records if "record_outcome failed" in r.getMessage()]) == 1  # once


class Answering(Provider):
    """A provider that answers with what it is given: a result or an error."""

    name = "answering"

    def __init__(self, answer: SendResult | Exception) -> None:
        super().__init__("sms", Settings())
        self.answer = answer

    async def send(self, message: Message) -> SendResult:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _message() -> Message:
    return Message("r-1:sms", "r-1", "acct-1", "overdue_notice", "collection", "sms", "+8613800138000", None)  # type: ignore[arg-type]


def test_each_provider_call_is_timed_and_failures_are_counted_by_class() -> None:
    calls = value("herald_provider_latency_seconds_count", provider="answering")
    ambiguous = value("herald_provider_errors_total", provider="answering", error="ambiguous")
    result = asyncio.run(Answering(SendResult("SM1")).timed_send(_message()))
    assert result.provider_ref == "SM1"
    with pytest.raises(AmbiguousError):
        asyncio.run(Answering(AmbiguousError("gateway timeout", code=504)).timed_send(_message()))
    assert value("herald_provider_latency_seconds_count", provider="answering") == calls + 2
    assert value("herald_provider_errors_total", provider="answering", error="ambiguous") == ambiguous + 1


def _call(app: Callable[..., Iterable[bytes]], path: str, auth: str | None = None) -> tuple[str, bytes]:
    status: list[str] = []
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    if auth:
        environ["HTTP_AUTHORIZATION"] = auth
    body = b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0], body


def test_metrics_app_serves_its_registry_behind_the_bearer_token() -> None:
    registry = CollectorRegistry()
    Counter("herald_probe_total", "a probe", registry=registry).inc(3)
    app = metrics_app(registry, token="s3cret")
    assert _call(app, "/metrics")[0].startswith("401")
    assert _call(app, "/metrics", "Bearer wrong")[0].startswith("401")
    status, body = _call(app, "/metrics", "Bearer s3cret")
    assert status.startswith("200")
    assert b"herald_probe_total 3.0" in body
    assert _call(app, "/elsewhere", "Bearer s3cret")[0].startswith("404")
    assert _call(metrics_app(registry), "/metrics")[0].startswith("200")  # no token configured


def test_token_check() -> None:
    assert token_ok(None, None)
    assert token_ok("Bearer abc", "abc")
    assert token_ok("bearer abc", "abc")
    assert not token_ok("Basic abc", "abc")
    assert not token_ok("Bearer abcd", "abc")
    assert not token_ok(None, "abc")


def test_the_supervisor_reports_each_exited_process_before_restarting_it() -> None:
    exited: list[int] = []
    started: list[int] = []

    def sleep(seconds: float) -> None:
        if len(exited) == 2:
            supervisor.stop(signal.SIGTERM)

    supervisor = Supervisor(
        [[sys.executable, "-c", "raise SystemExit(0)"]], sleep=sleep, on_exit=exited.append
    )
    original = supervisor.start

    def start(index: int) -> None:
        original(index)
        proc = supervisor.procs[index]
        assert proc is not None
        started.append(proc.pid)

    supervisor.start = start  # type: ignore[method-assign]
    supervisor.run()
    assert exited == started
    assert len(exited) >= 2
    assert supervisor.alive() == 0


def test_a_dead_process_loses_its_live_gauges_and_keeps_its_counts(tmp_path: Path) -> None:
    host = HostMetrics(Settings(metrics_port=0))
    try:
        directory = host.directory
        assert host.child_env({"A": "1"}) == {"A": "1", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        (directory / "gauge_livesum_4242.db").write_bytes(b"")
        (directory / "counter_4242.db").write_bytes(b"")
        host.process_died(4242)
        assert not (directory / "gauge_livesum_4242.db").exists()
        assert (directory / "counter_4242.db").exists()
    finally:
        host.close()
    assert not directory.exists()
