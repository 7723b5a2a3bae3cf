"""`herald suppress init` on every start (the compose init service): marks only a new Redis.

Real redis-server and a SQLite ledger filled by the real `herald ledger --once`. A Redis that
lost its data while the ledger has hold changes is refused with what to run instead; `herald
suppress rebuild` brings the holds back; init then has nothing to do.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from herald.holds.suppression import MARKER, Hold, SuppressionStore
from herald.ops.embedded import free_port
from herald.ops.stack import LocalStack

pytestmark = pytest.mark.integration


@dataclass
class Deployment:
    """A redis-server and a ledger, and the herald command line pointed at them."""

    client: redis.Redis
    env: dict[str, str]
    root: Path

    def herald(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "herald.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def deployment(tmp_path: Path, repo_root: Path) -> Iterator[Deployment]:
    stack = LocalStack(tmp_path, cwd=repo_root)
    try:
        url = stack.start_redis()
        env = stack.configure({"HERALD_TEMPLATES_DIR": str(repo_root / "templates"), "COLUMNS": "250"})
        yield Deployment(redis.Redis.from_url(url, decode_responses=True), env, repo_root)
    finally:
        stack.close()


def _hold(account: str) -> Hold:
    return Hold(
        id="agreement:AGR-1",
        account_id=account,
        source="agreement",
        reason="plan signed",
        agreement="AGR-1",
        by="ops",
    )


def test_a_new_redis_with_an_empty_ledger_is_marked_then_left_alone(deployment: Deployment) -> None:
    first = deployment.herald("suppress", "init", "--by", "compose")
    assert first.returncode == 0, first.stderr
    assert "marked as populated" in first.stdout
    assert "compose" in (deployment.client.get(MARKER) or "")

    again = deployment.herald("suppress", "init", "--by", "someone-else")
    assert again.returncode == 0, again.stderr
    assert "already marked" in again.stdout
    assert "by compose" in again.stdout
    assert "someone-else" not in (deployment.client.get(MARKER) or "")


def test_a_redis_that_lost_its_holds_is_refused_and_rebuild_restores_them(deployment: Deployment) -> None:
    store = SuppressionStore(deployment.client)
    store.initialize("install")
    store.add(_hold("acct-held-1"))
    copied = deployment.herald("ledger", "--once")
    assert copied.returncode == 0, copied.stderr

    deployment.client.flushall()  # Redis restarted empty: holds and marker are gone

    refused = deployment.herald("suppress", "init")
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "not marked" in message
    assert "herald suppress rebuild" in message
    assert deployment.client.exists(MARKER) == 0
    assert store.holds("acct-held-1") == []

    rebuilt = deployment.herald("suppress", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert [h.id for h in store.holds("acct-held-1")] == ["agreement:AGR-1"]
    assert deployment.client.exists(MARKER) == 1

    after = deployment.herald("suppress", "init")
    assert after.returncode == 0, after.stderr
    assert "already marked" in after.stdout


def test_force_marks_without_asking_the_ledger(deployment: Deployment) -> None:
    store = SuppressionStore(deployment.client)
    store.add(_hold("acct-held-2"))
    assert deployment.herald("ledger", "--once").returncode == 0
    deployment.client.flushall()

    assert deployment.herald("suppress", "init").returncode == 1
    forced = deployment.herald("suppress", "init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert deployment.client.exists(MARKER) == 1


def test_an_unreachable_ledger_refuses_rather_than_guessing(deployment: Deployment) -> None:
    port = free_port()  # nothing listens there
    deployment.env["HERALD_LEDGER_URL"] = f"postgresql://herald:secret@127.0.0.1:{port}/herald"
    refused = deployment.herald("suppress", "init")
    assert refused.returncode == 3
    assert "not marked" in refused.stderr
    assert "secret" not in refused.stderr
    assert deployment.client.exists(MARKER) == 0


def test_an_unreachable_redis_is_named_without_its_password(deployment: Deployment) -> None:
    deployment.env["HERALD_REDIS_URL"] = f"redis://:topsecret@127.0.0.1:{free_port()}/0"
    refused = deployment.herald("suppress", "init")
    assert refused.returncode == 3
    assert "cannot reach Redis at redis://:***@127.0.0.1" in " ".join(refused.stderr.split())
    assert "topsecret" not in refused.stderr
