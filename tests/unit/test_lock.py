"""uv.lock matches pyproject.toml: what a fresh machine installs is what the tests ran with."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _uv(repo_root: Path) -> str:
    found = shutil.which("uv") or str(repo_root / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not installed: ./test.sh installs it into .tools/ (scripts/bootstrap.sh)")
    return found


def _check(uv: str, project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(
        [uv, "lock", "--check", "--offline", "--directory", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_lock_matches_pyproject(repo_root: Path) -> None:
    done = _check(_uv(repo_root), repo_root)
    assert done.returncode == 0, f"uv.lock is stale: run scripts/lock.sh --keep\n{done.stderr}"


def test_a_dependency_added_without_locking_is_caught(repo_root: Path, tmp_path: Path) -> None:
    uv = _uv(repo_root)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(repo_root / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("dependencies = [\n", 'dependencies = [\n    "six>=1.16",\n', 1))

    done = _check(uv, tmp_path)

    assert done.returncode != 0
