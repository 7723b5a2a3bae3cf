"""HERALD_REDIS_URL through Redis Sentinel, as docs/scaling.md sets it up: real servers.

A redis-server master, a replica and one Sentinel (deploy/sentinel.conf, pointed at the master
with quorum 1) on free ports; a real `herald worker` whose broker and state both find the
master through the Sentinel URL. A reminder goes
out; the master is killed, the Sentinel promotes the replica, and the next reminder goes out
through the promoted one, with the same worker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from pydantic import ValidationError

from herald.config import Settings
from herald.holds.suppression import SuppressionStore
from herald.intake.producer import Producer
from herald.ops.embedded import free_port, start_redis
from herald.state.queues import celery_config
from herald.state.redisconn import redis_client
from herald.values.redis_urls import RedisURLError, display_redis_url, parse_sentinel
from tests.harness import make_reminder, wait_until

MASTER = "herald"  # the name deploy/sentinel.conf monitors


def test_a_sentinel_url_is_read_as_kombu_reads_it() -> None:
    target = parse_sentinel(
        "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://10.0.0.2/2;sentinel://10.0.0.3:26380"
    )
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380))
    assert (target.db, target.password, target.username) == (2, "s3cret", None)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sentinel://h1:26379/0;redis://h2:6379/0", "must start with sentinel://"),
        ("sentinel://h1:26379/0;sentinel://h2:26379/1", "different databases"),
        ("sentinel://h1:26379/zero", "must be a number"),
        ("sentinel://:26379/0", "no host"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_the_problem(url: str, says: str) -> None:
    with pytest.raises(RedisURLError, match=says):
        parse_sentinel(url)
    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url=url, redis_sentinel_master=MASTER)


def test_a_sentinel_url_needs_the_master_name() -> None:
    with pytest.raises(ValidationError, match="HERALD_REDIS_SENTINEL_MASTER"):
        Settings(redis_url="sentinel://127.0.0.1:26379/0")


def test_passwords_are_hidden_when_a_redis_url_is_shown() -> None:
    shown = display_redis_url("sentinel://:pw1@h1:26379/0;sentinel://user:pw2@h2:26379/0")
    assert shown == "sentinel://:***@h1:26379/0;sentinel://user:***@h2:26379/0"
    assert display_redis_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_an_unknown_redis_url_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url="rediscluster://127.0.0.1:7000/0")


def test_the_broker_gets_the_master_name_and_the_sentinels_password() -> None:
    settings = Settings(
        redis_url="sentinel://127.0.0.1:26379/0",
        redis_sentinel_master=MASTER,
        redis_sentinel_password="sentinel-secret",
    )
    config = celery_config(settings)
    assert config["broker_transport"] == "herald.state.broker:SentinelTransport"
    options = config["broker_transport_options"]
    assert options["master_name"] == MASTER
    assert options["sentinel_kwargs"]["password"] == "sentinel-secret"
    assert options["sentinel_kwargs"]["socket_connect_timeout"] > 0  # a Sentinel host that is down
    assert options["visibility_timeout"] == settings.visibility_timeout


@dataclass
class SentinelSetup:
    """A master, its replica and one Sentinel watching them."""

    master_port: int
    replica_port: int
    sentinel_port: int
    procs: dict[str, subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        dead = free_port()  # a Sentinel host that is down: the clients must ask the next one
        return f"sentinel://127.0.0.1:{dead}/0;sentinel://127.0.0.1:{self.sentinel_port}/0"

    def master_address(self) -> tuple[str, int] | None:
        client = redis.Redis(port=self.sentinel_port, decode_responses=True, socket_timeout=2)
        try:
            answer = client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return (answer[0], int(answer[1])) if answer else None


def _sentinel_conf(shipped: Path, path: Path, master_port: int) -> None:
    """deploy/sentinel.conf watching this test's master (quorum 1, one Sentinel), quicker to act."""
    text = shipped.read_text()
    changes = {
        r"monitor {} \S+ \d+ \d+": f"monitor {MASTER} 127.0.0.1 {master_port} 1",
        r"down-after-milliseconds {} \d+": f"down-after-milliseconds {MASTER} 1000",
        r"failover-timeout {} \d+": f"failover-timeout {MASTER} 10000",
    }
    for pattern, line in changes.items():
        pattern = "(?m)^sentinel " + pattern.format(re.escape(MASTER)) + "$"
        text, found = re.subn(pattern, f"sentinel {line}", text)
        assert found == 1, f"deploy/sentinel.conf has no line matching {pattern}"
    path.write_text(text)


@pytest.fixture
def sentinel_setup(tmp_path: Path, repo_root: Path) -> Iterator[SentinelSetup]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        master_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
        procs["master"] = start_redis(master_port, tmp_path / "master", tmp_path / "master.log")
        procs["replica"] = start_redis(replica_port, tmp_path / "replica", tmp_path / "replica.log")
        replica = redis.Redis(port=replica_port, decode_responses=True)
        replica.execute_command("REPLICAOF", "127.0.0.1", str(master_port))
        wait_until(
            lambda: replica.info("replication").get("master_link_status") == "up", 30, "the replica to sync"
        )
        conf = tmp_path / "sentinel" / "sentinel.conf"
        conf.parent.mkdir()
        _sentinel_conf(repo_root / "deploy" / "sentinel.conf", conf, master_port)
        where = ["--port", str(sentinel_port), "--bind", "127.0.0.1", "--dir", str(conf.parent)]
        with (tmp_path / "sentinel.log").open("ab") as log:
            procs["sentinel"] = subprocess.Popen(
                ["redis-server", str(conf), "--sentinel", *where], stdout=log, stderr=subprocess.STDOUT
            )
        setup = SentinelSetup(master_port, replica_port, sentinel_port, procs)
        wait_until(lambda: setup.master_address() == ("127.0.0.1", master_port), 30, "the Sentinel")
        # the Sentinel must know the replica before it can promote it
        sentinel = redis.Redis(port=sentinel_port, decode_responses=True)
        wait_until(
            lambda: sentinel.execute_command("SENTINEL", "replicas", MASTER),
            30,
            "the Sentinel to see the replica",
        )
        yield setup
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.integration
def test_a_worker_sends_through_sentinel_and_follows_a_failover(
    sentinel_setup: SentinelSetup, tmp_path: Path, repo_root: Path
) -> None:
    url = sentinel_setup.url
    settings = Settings(
        redis_url=url,
        redis_sentinel_master=MASTER,
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path / "outbox",
        send_window="00:00-24:00",
        caps="",
        duplicate_window=0,
    )
    state = redis_client(url, settings, decode_responses=True)
    SuppressionStore(state).initialize("tests")
    assert redis.Redis(port=sentinel_setup.master_port).exists("herald:suppression:ready")
    env = {
        **os.environ,
        "HERALD_REDIS_URL": url,
        "HERALD_REDIS_SENTINEL_MASTER": MASTER,
        "HERALD_TEMPLATES_DIR": str(settings.templates_dir),
        "HERALD_OUTBOX_DIR": str(settings.outbox_dir),
        "HERALD_SEND_WINDOW": "00:00-24:00",
        "HERALD_CAPS": "",
        "HERALD_DUPLICATE_WINDOW": "0",
        "HERALD_METRICS_PORT": "0",
        "HERALD_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "herald.cli",
            "worker",
            "--processes",
            "1",
            "-n",
            f"sentinel-{os.getpid()}@%h",
        ],
        env=env,
        cwd=repo_root,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: worker.poll() is not None or "ready." in log.read_text(errors="replace"),
            120,
            "the worker",
        )
        assert worker.poll() is None, log.read_text()[-3000:]

        def sent(reminder_id: str) -> bool:
            return state.hget(f"herald:d:{reminder_id}:sms", "outcome") == "sent"

        producer = Producer(settings)
        first = make_reminder(channels=["sms"])
        assert producer.enqueue(first).status == "accepted"
        wait_until(lambda: sent(first["id"]), 60, "the first reminder to be sent")

        # the master dies; the Sentinel promotes the replica; herald finds it by itself
        master = sentinel_setup.procs["master"]
        master.send_signal(signal.SIGKILL)
        master.wait(timeout=10)
        replica_address = ("127.0.0.1", sentinel_setup.replica_port)
        wait_until(lambda: sentinel_setup.master_address() == replica_address, 60, "the failover")

        wait_until(lambda: _reachable(state) and _reachable(producer.redis), 60, "the new master")
        with producer.celery.connection_for_write() as broker:
            broker.ensure_connection(max_retries=60, interval_start=0.2, interval_step=0.2, interval_max=1)
        second = make_reminder(channels=["sms"])
        assert producer.enqueue(second).status == "accepted"
        wait_until(lambda: sent(second["id"]), 90, "the second reminder to be sent after the failover")
        promoted = redis.Redis(port=sentinel_setup.replica_port, decode_responses=True)
        assert promoted.hget(f"herald:d:{second['id']}:sms", "outcome") == "sent"
        lines = [orjson.loads(line) for line in (settings.outbox_dir / "sms.jsonl").read_bytes().splitlines()]
        assert sorted(line["reminder_id"] for line in lines) == sorted([first["id"], second["id"]])
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def _reachable(client: redis.Redis) -> bool:
    """Whether ``client`` reaches a master again (False while the failover is under way)."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
