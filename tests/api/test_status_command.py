"""``herald status``: the same JSON as ``GET /v1/reminders/{id}``, and a table for people.

The command runs as a subprocess on the API's redis-server, its output piped (not a terminal),
with no COLUMNS and no HERALD_* variable from the outer environment but the Redis URL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
from fastapi.testclient import TestClient

from tests.api.conftest import Keys, auth

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADERS = ("channel", "state", "outcome", "provider", "reason", "attempts", "updated")


def _status(redis_url: str, repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    outer = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "herald.cli", "status", *args],
        env={**outer, "HERALD_REDIS_URL": redis_url},
        cwd=repo_root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _both(client: TestClient, keys: Keys, redis_url: str, repo_root: Path, rid: str) -> tuple[Any, Any]:
    api = client.get(f"/v1/reminders/{rid}", headers=auth(keys.producer))
    assert api.status_code == 200, api.text
    cli = _status(redis_url, repo_root, rid, "--json")
    assert cli.returncode == 0, cli.stderr
    return json.loads(cli.stdout), api.json()


def _shanghai(iso_utc: str) -> str:
    """An ISO-8601 UTC time as the tables show it, worked out here with zoneinfo."""
    return datetime.fromisoformat(iso_utc).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S +08:00")


def test_status_json_and_the_api_answer_the_same_nulls_included(
    client: TestClient, keys: Keys, reminder: dict[str, Any], redis_url: str, repo_root: Path
) -> None:
    assert client.post("/v1/reminders", json=reminder, headers=auth(keys.producer)).status_code == 201
    cli, api = _both(client, keys, redis_url, repo_root, reminder["id"])
    assert cli == api
    assert cli["cancelled_at"] is None
    for delivery in cli["deliveries"]:
        assert (delivery["outcome"], delivery["reason"], delivery["finished_at"]) == (None, None, None)
        assert delivery["accepted_at"].endswith("+00:00")  # machines keep ISO-8601 UTC

    assert client.delete(f"/v1/reminders/{reminder['id']}", headers=auth(keys.producer)).status_code == 200
    cli, api = _both(client, keys, redis_url, repo_root, reminder["id"])
    assert cli == api
    assert cli["cancelled_at"].endswith("+00:00")
    assert {d["outcome"] for d in cli["deliveries"]} == {"cancelled"}
    assert all(d["reason"] and d["finished_at"] for d in cli["deliveries"])


def test_status_piped_shows_times_in_the_default_zone_named_and_whole_header_words(
    client: TestClient,
    keys: Keys,
    reminder: dict[str, Any],
    redis_url: str,
    repo_root: Path,
    rds: redis.Redis,
) -> None:
    assert client.post("/v1/reminders", json=reminder, headers=auth(keys.producer)).status_code == 201
    long_reason = "provider answered 30007 (carrier filtering): " + "the message was held for review; " * 8
    rds.hset(f"herald:d:{reminder['id']}:email", "reason", long_reason)  # it must fold in the table
    api = client.get(f"/v1/reminders/{reminder['id']}", headers=auth(keys.producer)).json()

    done = _status(redis_url, repo_root, reminder["id"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    first = lines[0]
    assert first.startswith(f"reminder {reminder['id']}")
    assert f"accepted {_shanghai(api['accepted_at'])}" in first
    assert first.endswith("(times in Asia/Shanghai)")
    header = next(line for line in lines if "channel" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == list(HEADERS)
    for delivery in api["deliveries"]:
        assert _shanghai(delivery["updated_at"]) in done.stdout
    assert api["accepted_at"] not in done.stdout  # no ISO-8601 UTC for people
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", done.stdout)  # nor milliseconds
    assert lines[-1].strip() == "times in Asia/Shanghai"
    assert max(len(line) for line in lines) <= 200  # the piped page width
