"""deploy/systemd: a unit for every herald process, each starting a real herald command.

`systemd-analyze verify` checks each unit where the binary exists (it reads unit files without
a running systemd). It also checks that ExecStart's program exists, so it verifies copies whose
/opt/herald/.venv/bin/herald is this checkout's own `herald`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from herald.config import Settings
from tests.deploy.support import DEPLOY, parse_herald

UNITS = DEPLOY / "systemd"
INSTALLED_HERALD = "/opt/herald/.venv/bin/herald"
EXPECTED = {
    "herald-worker@.service": "herald worker",
    "herald-scheduler.service": "herald scheduler",
    "herald-reconciler.service": "herald reconcile",
    "herald-ledger.service": "herald ledger",
    "herald-api.service": "herald api",
    "herald-flower.service": "herald flower",
}


def _entries(unit: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment in a unit file (keys may repeat)."""
    section = ""
    found = []
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def _value(unit: Path, key: str) -> str:
    values = [v for s, k, v in _entries(unit) if k == key]
    assert len(values) == 1, f"{unit.name}: {len(values)} {key} lines"
    return values[0]


def _argv(exec_start: str, instance: str, options: str) -> list[str]:
    """ExecStart as systemd would run it for ``instance`` with ``$WORKER_OPTIONS`` = ``options``."""
    text = exec_start.replace("%%", "\0").replace("%i", instance).replace("\0", "%")
    assert "%" not in text.replace("%h", ""), f"unexpected specifier in {exec_start}"
    argv = []
    for word in text.split():
        if word == "$WORKER_OPTIONS":
            argv += options.split()
        else:
            argv.append(word)
    return argv


def test_a_unit_for_every_process() -> None:
    assert {p.name for p in UNITS.glob("*.service")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exec_start_is_a_real_herald_command(name: str) -> None:
    unit = UNITS / name
    argv = _argv(_value(unit, "ExecStart"), "sms", "-Q herald.sms,herald.sms.bulk")
    assert argv[0] == INSTALLED_HERALD
    parsed = parse_herald(argv)
    assert parsed.path == EXPECTED[name]
    if name == "herald-worker@.service":
        assert parsed.queues == ["herald.sms", "herald.sms.bulk"]
        assert parse_herald(_argv(_value(unit, "ExecStart"), "all", "")).queues == []  # every queue


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_units_share_the_environment_file_user_and_restart(name: str) -> None:
    unit = UNITS / name
    files = [v for _, k, v in _entries(unit) if k == "EnvironmentFile"]
    assert files[0] == "/etc/herald/herald.env"
    assert _value(unit, "User") == "herald"
    assert _value(unit, "WorkingDirectory") == "/opt/herald"
    assert _value(unit, "Restart") == "always"
    assert _value(unit, "NoNewPrivileges") == "yes"
    assert "network-online.target" in _value(unit, "Wants")


def test_a_worker_has_the_time_it_needs_to_stop_and_less_than_systemds_default() -> None:
    unit = UNITS / "herald-worker@.service"
    assert _value(unit, "KillSignal") == "SIGTERM"  # warm shutdown
    assert Settings().stop_within <= int(_value(unit, "TimeoutStopSec")) < 90


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: the units were not verified")
    herald = Path(sys.executable).with_name("herald")
    assert herald.exists(), f"{herald}: the herald console script of this environment"
    for unit in UNITS.glob("*.service"):
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_HERALD, str(herald)))
    result = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert complaints == [], "\n".join(complaints)


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    herald = Path(sys.executable).with_name("herald")
    text = (UNITS / "herald-scheduler.service").read_text().replace(INSTALLED_HERALD, str(herald))
    broken = tmp_path / "herald-scheduler.service"
    broken.write_text(re.sub(r"(?m)^Restart=always$", "Restart=sometimes", text))
    result = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=120)
    assert "restart specifier" in result.stdout + result.stderr  # printed, though the exit code is 0
