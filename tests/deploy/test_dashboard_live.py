"""The dashboard against a running herald: a real Prometheus (Debian's) scrapes a worker host and
the API every second, and every panel's query is answered without error, the core ones with
data (deliveries sent, provider latency, queues, the hold store, holds added...).

What ``scripts/dashboard_preview.py`` draws for the docs, checked: its :class:`Prometheus` runs
here. Every wait polls Prometheus for a condition until a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.holds.suppression import Hold, SuppressionStore
from herald.ops.embedded import free_port
from tests.harness import Herald, make_reminder, running_herald
from tests.scripts import load_script

pytestmark = pytest.mark.integration

DEADLINE = 90.0


PREVIEW = load_script("dashboard_preview")


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[tuple[Herald, Any]]:
    metrics = free_port()
    home = tmp_path_factory.mktemp("dashboard-live")
    with running_herald(
        home / "herald", repo_root, {"HERALD_METRICS_PORT": str(metrics)}, api=True
    ) as system:
        assert system.api_url
        prometheus = PREVIEW.Prometheus(
            home / "prometheus",
            {
                "herald-worker": [f"127.0.0.1:{metrics}"],
                "herald-api": [system.api_url.removeprefix("http://")],
            },
        )
        try:
            reminders = [make_reminder(account_id=f"acct-dash-{n}") for n in range(20)]
            SuppressionStore(system.redis()).add(
                Hold(id="op-1", account_id="acct-dash-0", source="operator", reason="dashboard", by="tests")
            )
            producer = system.producer()
            try:
                producer.enqueue_many(reminders)
            finally:
                producer.close()
            keys = [f"{r['id']}:{c}" for r in reminders[1:] for c in ("sms", "email", "push")]
            assert system.wait_count_sent(keys, len(keys)) == len(keys)
            yield system, prometheus
        finally:
            prometheus.close()


def _answers(prometheus: Any, expr: str) -> bool:
    return bool(prometheus.query(PREVIEW.expression(expr))["result"])


def test_every_panel_query_is_answered_by_prometheus_and_the_core_ones_have_data(
    scraped: tuple[Herald, Any],
) -> None:
    _, prometheus = scraped
    dashboard = json.loads(PREVIEW.DASHBOARD.read_text("utf-8"))
    queries = {
        target["expr"]: panel["title"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    }
    core = {
        'sum(increase(herald_outcomes_total{outcome="sent"}[1h]))',
        "sum by (outcome) (rate(herald_outcomes_total[$__rate_interval]))",
        "sum by (channel, provider) (rate(herald_provider_sent_total[$__rate_interval]))",
        "histogram_quantile(0.95, sum by (le, provider) "
        "(rate(herald_provider_latency_seconds_bucket[$__rate_interval])))",
        "max by (queue) (herald_queue_depth)",
        "max by (queue) (herald_queue_oldest_seconds)",
        "max(herald_scheduled_deliveries)",
        "max(herald_in_doubt_deliveries)",
        "max by (change) (increase(herald_hold_changes_total[1h]))",
        "min(herald_suppression_populated)",
        "min(herald_redis_up)",
        "sum(herald_worker_processes)",
        "max(herald_ledger_backlog_entries)",
    }
    assert core <= set(queries), core - set(queries)
    # rates need two scrapes after the deliveries: wait for the last of them to be answered
    for expr in sorted(core):
        prometheus.wait(
            lambda e=expr: _answers(prometheus, e), DEADLINE, f"data for {queries[expr]!r}: {expr}"
        )
    for expr in queries:
        prometheus.query(PREVIEW.expression(expr))  # raises naming the query if Prometheus refuses it
    populated = prometheus.query("min(herald_suppression_populated)")["result"][0]["value"][1]
    assert populated == "1"
    added = prometheus.query('max(herald_hold_changes_total{change="added"})')["result"][0]["value"][1]
    assert added == "1"
    assert "herald_outcomes_total" in prometheus.names()
