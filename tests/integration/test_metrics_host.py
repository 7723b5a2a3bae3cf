"""A worker host's /metrics adds up its processes; the API's /metrics answers; both need the token.

This module runs its own system: `herald worker --processes 2` with HERALD_METRICS_PORT on a
free port and HERALD_METRICS_TOKEN set, one delivery key per message (so both processes take
work), and `herald api`.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from herald.ops.embedded import free_port
from herald.state.queues import ALL_QUEUES
from tests.harness import Herald, make_reminder, running_herald, wait_until

pytestmark = pytest.mark.integration

TOKEN = "metrics-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE = 60.0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[tuple[Herald, str]]:
    port = free_port()
    extra = {"HERALD_METRICS_PORT": str(port), "HERALD_METRICS_TOKEN": TOKEN, "HERALD_CHANNEL_BATCH": "1"}
    with running_herald(tmp_path_factory.mktemp("metrics-host"), repo_root, extra, api=True) as system:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: _get(url).status_code == 200, DEADLINE, "the host's /metrics")
        yield system, url


def _get(url: str, headers: dict[str, str] | None = None) -> requests.Response:
    try:
        return requests.get(url, headers=headers if headers is not None else AUTH, timeout=10)
    except requests.ConnectionError:
        return requests.Response()


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = _get(url)
    answer.raise_for_status()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def sent_total(url: str) -> float:
    return sum(
        v
        for (name, labels), v in samples(url).items()
        if name == "herald_outcomes_total" and ("outcome", "sent") in labels
    )


def metrics_dir(system: Herald) -> Path:
    found = re.search(
        r"write their metrics to (\S+)", (system.logs / "worker.log").read_text(errors="replace")
    )
    assert found, "the worker log names its metrics directory"
    return Path(found.group(1))


def sent_by_process(directory: Path) -> dict[int, float]:
    """Each worker process's own count of `sent`, read from its file alone."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        counts[pid] = sum(
            s.value
            for metric in MultiProcessCollector.merge([str(path)])
            for s in metric.samples
            if s.name == "herald_outcomes_total" and s.labels.get("outcome") == "sent"
        )
    return counts


def deliver(system: Herald, count: int) -> int:
    """Enqueue ``count`` reminders (3 channels each) and wait until every delivery is sent."""
    reminders = [make_reminder(account_id=f"acct-m-{n}") for n in range(count)]
    producer = system.producer()
    try:
        results = producer.enqueue_many(reminders)
    finally:
        producer.close()
    assert all(r.status == "accepted" for r in results)
    keys = [f"{r['id']}:{channel}" for r in reminders for channel in ("sms", "email", "push")]
    assert system.wait_count_sent(keys, len(keys)) == len(keys)
    return len(keys)


def test_the_host_adds_up_both_processes_and_keeps_a_dead_ones_counts(host: tuple[Herald, str]) -> None:
    system, url = host
    directory = metrics_dir(system)
    delivered = 0
    # until both processes have sent some (one delivery key per message: they share the work)
    while len([n for n in sent_by_process(directory).values() if n > 0]) < 2:
        delivered += deliver(system, 8)
        assert delivered <= 240, f"one process took every message: {sent_by_process(directory)}"
    wait_until(lambda: sent_total(url) == delivered, DEADLINE, f"{delivered} sent on the host's /metrics")
    per_process = sent_by_process(directory)
    assert sum(per_process.values()) == delivered
    assert len([n for n in per_process.values() if n > 0]) == 2

    values = samples(url)
    assert values[("herald_worker_processes", ())] == 2
    assert values[("herald_redis_up", ())] == 1
    assert values[("herald_provider_latency_seconds_count", (("provider", "outbox"),))] == delivered
    waited = [v for (name, _), v in values.items() if name == "herald_limiter_wait_seconds_count"]
    assert sum(waited) == delivered  # each delivery took its token once

    # a worker process dies; the supervisor restarts it; its counts stay in the host's total
    victim = max(per_process, key=lambda pid: per_process[pid])
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: (
            (v := samples(url))[("herald_worker_restarts_total", ())] == 1
            and v[("herald_worker_processes", ())] == 2
        ),
        DEADLINE,
        "the supervisor to restart the killed process",
    )
    wait_until(
        lambda: (system.logs / "worker.log").read_text(errors="replace").count("ready.") >= 3,
        DEADLINE,
        "the new process to be ready",
    )
    assert sent_total(url) == delivered
    delivered += deliver(system, 4)
    wait_until(lambda: sent_total(url) == delivered, DEADLINE, f"{delivered} sent after the restart")


def test_the_host_metrics_need_the_token(host: tuple[Herald, str]) -> None:
    _, url = host
    assert _get(url, headers={}).status_code == 401
    assert _get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert _get(url).status_code == 200


def test_the_api_serves_metrics_for_prometheus(host: tuple[Herald, str]) -> None:
    system, _ = host
    url = f"{system.api_url}/metrics"
    assert _get(url, headers={}).status_code == 401
    answer = _get(url)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    values = samples(url)
    assert values[("herald_redis_up", ())] == 1
    queues = {dict(labels)["queue"] for name, labels in values if name == "herald_queue_depth"}
    assert queues == set(ALL_QUEUES)
