"""deploy/alerts.yml: valid for Prometheus, wired into prometheus.yml and compose, each alert
firing and not firing on synthetic series (`promtool test rules`, Debian's promtool), and every
metric it reads one that herald exports."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import yaml

from tests.deploy.support import DEPLOY, exported_metrics, unknown_metrics

ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: ./test.sh installs Debian's prometheus package"
    return subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text("utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_and_the_prometheus_config_that_loads_them_are_valid() -> None:
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "alerts.yml" in checked.stdout  # the config loads the rules file
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    tested = _promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text("utf-8"))["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert fired == names
    assert quiet >= names - {"HeraldProviderFailing", "HeraldWorkersRestarting"}
    # those two stay quiet for the other series of their case (Twilio's permanent refusals, w2's
    # single restart): promtool compares the whole set of alerts, so the one expected is all
    assert {"HeraldProviderFailing", "HeraldWorkersRestarting"} <= fired


def test_every_metric_the_alerts_read_is_one_herald_exports() -> None:
    exported = exported_metrics()
    for rule in _rules():
        unknown = unknown_metrics(rule["expr"], exported)
        assert not unknown, f"{rule['alert']} reads {unknown}, which herald does not export"


def test_compose_mounts_the_rules_beside_the_prometheus_config() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
