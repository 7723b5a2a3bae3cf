"""deploy/compose.yaml: parses, runs only real herald commands, and is wired as the guide says.

No container engine runs here: the file is read with PyYAML, each herald service's command is
parsed by herald's own command line (and Celery's, for a worker's options), and a real Compose
implementation (`docker-compose config`, which needs no daemon) validates the whole file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald.config import Settings
from herald.state.queues import ALL_QUEUES
from tests.deploy.support import DEPLOY, parse_herald, setting_names

COMPOSE = DEPLOY / "compose.yaml"
HERALD_SERVICES = {
    "init",
    "worker-intake",
    "worker-sms",
    "worker-email",
    "worker-push",
    "scheduler",
    "reconciler",
    "ledger",
    "api",
    "flower",
}
AFTER_INIT = {"worker-intake", "worker-sms", "worker-email", "worker-push", "scheduler", "reconciler"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _seconds(duration: str) -> float:
    """A Compose duration (``15m``, ``60s``, ``1h30m``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(n) * units[u] for n, u in parts)


def test_every_process_has_its_service(services: dict[str, dict[str, Any]]) -> None:
    assert HERALD_SERVICES | {"redis", "postgres"} <= set(services)
    for name in HERALD_SERVICES:
        assert services[name]["image"] == services["api"]["image"], f"{name} runs another image"


def test_every_herald_command_is_a_real_subcommand_with_valid_options(
    services: dict[str, dict[str, Any]],
) -> None:
    paths = {}
    for name in HERALD_SERVICES:
        command = services[name]["command"]
        assert isinstance(command, list), f"{name}: command as a list, not a shell string"
        paths[name] = parse_herald(command).path
    assert paths["init"] == "herald suppress init"
    assert paths["reconciler"] == "herald reconcile"
    assert paths["ledger"] == "herald ledger"
    assert {paths[n] for n in ("api", "flower", "scheduler")} == {
        "herald api",
        "herald flower",
        "herald scheduler",
    }


def test_the_workers_consume_every_queue_one_channel_each(services: dict[str, dict[str, Any]]) -> None:
    queues = {
        name: parse_herald(s["command"]).queues for name, s in services.items() if name.startswith("worker-")
    }
    assert queues["worker-intake"] == ["herald.intake"]
    for channel in ("sms", "email", "push"):
        assert sorted(queues[f"worker-{channel}"]) == [f"herald.{channel}", f"herald.{channel}.bulk"]
    consumed = [q for qs in queues.values() for q in qs]
    assert sorted(consumed) == sorted(ALL_QUEUES), "every queue consumed, by exactly one worker service"


def test_workers_scheduler_and_reconciler_wait_for_a_successful_init(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AFTER_INIT:
        assert services[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}, name
    init = services["init"]
    assert init["restart"] == "no"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"  # it asks the ledger
    for name in ("api", "ledger", "flower"):  # operators need these while init refuses
        assert "init" not in services[name].get("depends_on", {}), name


def test_depends_on_healthy_only_on_services_with_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy"


def test_workers_have_the_time_they_need_to_stop(services: dict[str, dict[str, Any]]) -> None:
    needed = Settings().stop_within
    for name in ("worker-intake", "worker-sms", "worker-email", "worker-push"):
        assert needed <= _seconds(services[name]["stop_grace_period"]) < 90, name


def test_redis_runs_deploy_redis_conf(services: dict[str, dict[str, Any]]) -> None:
    redis_service = services["redis"]
    assert "./redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis_service["volumes"]
    assert redis_service["command"][:2] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert any(v.endswith(":/data") for v in redis_service["volumes"]), "Redis keeps its AOF on a volume"


def test_every_relative_path_exists(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
        for env_file in service.get("env_file", []):
            assert (DEPLOY / f"{env_file}.example").exists(), f"{name}: {env_file} has no example to copy"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_environment_names_are_settings(services: dict[str, dict[str, Any]]) -> None:
    known = setting_names()
    for name in HERALD_SERVICES:
        for key in services[name].get("environment", {}):
            assert key in known, f"{name}: {key} is not a herald setting"


def test_interpolated_variables_are_in_the_example_env_file() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    example = (DEPLOY / "compose.env.example").read_text()
    documented = set(re.findall(r"(?m)^#?\s*([A-Z_][A-Z0-9_]*)=", example))
    assert used <= documented, f"not in compose.env.example: {sorted(used - documented)}"


def test_published_ports_are_the_services_own(services: dict[str, dict[str, Any]]) -> None:
    defaults = Settings()
    assert services["api"]["ports"] == [f"127.0.0.1:{defaults.api_port}:{defaults.api_port}"]
    assert services["flower"]["ports"] == [f"127.0.0.1:{defaults.flower_port}:{defaults.flower_port}"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


def test_prometheus_scrapes_every_worker_service_and_the_api(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {
        name: sorted(t for group in job["static_configs"] for t in group["targets"])
        for name, job in jobs.items()
    }
    defaults = Settings()
    workers = sorted(n for n in services if n.startswith("worker-"))
    assert targets["herald-worker"] == [f"{n}:{defaults.metrics_port}" for n in workers]
    assert targets["herald-api"] == [f"api:{defaults.api_port}"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


def test_a_real_compose_implementation_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed (./test.sh installs Debian's): the file was not validated"
        )
    project = tmp_path / "deploy"
    project.mkdir()
    shutil.copy(COMPOSE, project / "compose.yaml")
    shutil.copy(DEPLOY / "herald.env.example", project / "herald.env")
    (project / ".env").write_text(
        (DEPLOY / "compose.env.example")
        .read_text()
        .replace("REDIS_PASSWORD=\n", "REDIS_PASSWORD=r3dis\n")
        .replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=p0stgres\n")
        .replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=gr4fana\n")
    )
    result = subprocess.run(
        [binary, "--project-directory", str(project), "-f", str(project / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    api = resolved["services"]["api"]
    assert api["environment"]["HERALD_REDIS_URL"] == "redis://:r3dis@redis:6379/0"
    assert api["environment"]["HERALD_LEDGER_URL"] == "postgresql://herald:p0stgres@postgres:5432/herald"
    assert api["environment"]["HERALD_TEMPLATES_DIR"] == "/opt/herald/templates"  # from herald.env

    unset = subprocess.run(
        [binary, "--project-directory", str(project), "-f", str(project / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "", "POSTGRES_PASSWORD": ""},
    )
    assert unset.returncode != 0, "a missing password must stop compose"
    assert "REDIS_PASSWORD" in unset.stderr
