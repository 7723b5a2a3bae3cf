"""API keys: ``/v1/keys`` for admins, and ``herald keys`` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import OWNERS, Keys, auth, fresh


def test_an_admin_makes_lists_and_revokes_a_key(client: TestClient, keys: Keys) -> None:
    owner = fresh("collections-svc")
    made = client.post("/v1/keys", json={"owner": owner, "scopes": ["producer"]}, headers=auth(keys.admin))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["key"].startswith(f"hk_{body['key_id']}_")
    assert "only once" in body["warning"]
    assert (body["owner"], body["scopes"], body["created_by"]) == (owner, ["producer"], OWNERS["admin"])

    new_key = body["key"]
    assert client.get(f"/v1/reminders/{fresh('r')}", headers=auth(new_key)).status_code == 404
    listed = client.get("/v1/keys", headers=auth(keys.admin)).json()["keys"]
    mine = [k for k in listed if k["key_id"] == body["key_id"]]
    assert len(mine) == 1
    assert mine[0]["revoked_at"] is None
    assert "key" not in mine[0]
    assert new_key not in json.dumps(listed)

    revoked = client.delete(f"/v1/keys/{body['key_id']}", headers=auth(keys.admin))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    refused = client.get(f"/v1/reminders/{fresh('r')}", headers=auth(new_key))
    assert refused.status_code == 401
    twice = client.delete(f"/v1/keys/{body['key_id']}", headers=auth(keys.admin))
    assert twice.json()["revoked_at"] == revoked.json()["revoked_at"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"owner": "x", "scopes": ["root"]}, ["body", "scopes", 0]),
        ({"owner": "x", "scopes": []}, ["body", "scopes"]),
        ({"owner": "  ", "scopes": ["admin"]}, ["body", "owner"]),
        ({"scopes": ["admin"]}, ["body", "owner"]),
    ],
)
def test_a_bad_key_request_is_a_422_naming_the_field(
    client: TestClient, keys: Keys, body: dict[str, object], loc: list[object]
) -> None:
    response = client.post("/v1/keys", json=body, headers=auth(keys.admin))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_revoking_an_unknown_key_is_404(client: TestClient, keys: Keys) -> None:
    assert client.delete("/v1/keys/0123456789ab", headers=auth(keys.admin)).status_code == 404
    assert client.delete("/v1/keys/NOT-HEX", headers=auth(keys.admin)).status_code == 422


def _herald(redis_url: str, repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald.cli", *args],
        env={**os.environ, "HERALD_REDIS_URL": redis_url, "COLUMNS": "250"},
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_makes_lists_and_revokes_keys(
    client: TestClient, redis_url: str, repo_root: Path
) -> None:
    owner = fresh("agreements-svc")
    made = _herald(
        redis_url, repo_root, "keys", "create", "--owner", owner, "--scope", "operator", "--scope", "producer"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("hk_")
    assert "shown only once" in made.stderr
    assert client.get("/v1/suppressions", headers=auth(key)).status_code == 200

    listed = _herald(redis_url, repo_root, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    record = next(k for k in json.loads(listed.stdout) if k["owner"] == owner)
    assert record["scopes"] == ["operator", "producer"]
    assert key not in listed.stdout
    table = _herald(redis_url, repo_root, "keys", "list")
    assert owner in table.stdout
    assert record["key_id"] in table.stdout

    revoked = _herald(redis_url, repo_root, "keys", "revoke", record["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/v1/suppressions", headers=auth(key)).status_code == 401

    unknown = _herald(redis_url, repo_root, "keys", "revoke", "0123456789ab")
    assert unknown.returncode == 1
    assert "no key" in unknown.stderr
    bad = _herald(redis_url, repo_root, "keys", "create", "--owner", owner, "--scope", "root")
    assert bad.returncode == 2
    assert "scope" in bad.stderr
