"""deploy/grafana: the dashboard's panels read metrics herald exports, in PromQL that Prometheus
accepts, laid out without overlap; compose provisions it with its data source.

Grafana itself does not run here; Prometheus's own parser (``promtool check rules``, Debian's
promtool) checks every query, turned into a recording rule.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import DEPLOY, exported_metrics, unknown_metrics

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "herald.json"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text("utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p["targets"]]


def test_every_panel_query_reads_metrics_herald_exports(dashboard: dict[str, Any]) -> None:
    exported = exported_metrics()
    assert queries(dashboard)
    for title, expr in queries(dashboard):
        assert "herald_" in expr, f"{title}: {expr} reads no herald metric"
        unknown = unknown_metrics(expr, exported)
        assert not unknown, f"panel {title!r} reads {unknown}, which herald does not export"


def test_every_panel_query_is_promql_that_prometheus_accepts(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: ./test.sh installs Debian's prometheus package"
    rules = []
    for n, (_, expr) in enumerate(queries(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable this test does not know in {expr}"
        rules.append({"record": f"herald:panel_{n}", "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_the_dashboard_shows_what_ops_watch(dashboard: dict[str, Any]) -> None:
    read = " ".join(expr for _, expr in queries(dashboard))
    for metric in (
        "herald_outcomes_total",  # deliveries by outcome and channel
        "herald_provider_latency_seconds_bucket",  # provider latency percentiles
        "herald_limiter_wait_seconds_bucket",  # limiter waits
        "herald_queue_depth",  # queue depth per lane
        "herald_queue_oldest_seconds",  # queue age per lane
        "herald_scheduled_deliveries",
        "herald_scheduled_due",
        "herald_in_doubt_deliveries",
        "herald_deadletter_entries",
        "herald_hold_changes_total",  # holds added and lifted
        "herald_suppression_populated",
        "herald_breaker_open",
    ):
        assert metric in read, f"no panel reads {metric}"
    latency = next(p for p in panels(dashboard) if p["title"] == "Provider latency")
    assert {t["expr"].split(",")[0] for t in latency["targets"]} == {
        f"histogram_quantile({q}" for q in ("0.5", "0.95", "0.99")
    }


def test_panels_have_unique_ids_a_description_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        grid = p["gridPos"]
        assert grid["x"] >= 0, p["title"]
        assert grid["x"] + grid["w"] <= 24, f"{p['title']} is wider than the dashboard"
        cells = {(grid["y"] + dy, grid["x"] + dx) for dy in range(grid["h"]) for dx in range(grid["w"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
        if p["type"] != "row":
            assert p.get("description"), f"{p['title']} says nothing of what it shows"


def test_every_panel_asks_for_the_provisioned_prometheus(dashboard: dict[str, Any]) -> None:
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (provisioned,) = source["datasources"]
    assert variable["current"]["value"] == provisioned["uid"]
    assert provisioned["url"] == "http://prometheus:9090"  # the compose service
    for p in panels(dashboard):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]


def test_compose_provisions_the_dashboard_and_its_data_source() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    grafana = compose["services"]["grafana"]
    assert grafana["profiles"] == compose["services"]["prometheus"]["profiles"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in grafana["volumes"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "herald.yml").read_text())
    (files,) = provider["providers"]
    assert files["options"]["path"] == "/etc/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/etc/grafana/dashboards/" + DASHBOARD.name
    assert all(p.startswith("127.0.0.1:") for p in grafana["ports"])
