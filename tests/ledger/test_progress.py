"""Progress output on large inputs: the commands a person waits for show a bar on stderr.

``herald suppress import``, ``herald suppress rebuild``, ``herald deadletter replay`` and
``herald ledger --once`` each run as their own process on a few thousand items against the ledger
suite's redis-server and a SQLite ledger (the bar does not depend on the database). Their stderr
is a pseudo-terminal, as a person's is: Rich draws a live bar only on a terminal (to a pipe it
writes the last frame once), so a test through a pipe, or with the terminal forced by
``FORCE_COLOR`` or ``TTY_COMPATIBLE``, would not show that a person sees the bar. Each test
checks that the bar was drawn live (Rich hid the cursor to redraw it), that its last frame shows
every item done out of the right total, that stdout (what a script reads) has no bar in it, and
that the work was all done.

The library halves are tested here too: the dead-letter replay goes through its stream in
batches, with the same answers as in one step, and the ledger writer reports each batch it copies
and knows its backlog where that is cheap.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine

from herald.config import Settings
from herald.delivery.deadletter import length, list_dead, replay
from herald.holds import suppression
from herald.holds.suppression import Hold, SuppressionStore
from herald.ledger.schema import delivery_events, hold_events
from herald.ops.heartbeat import PRIORITY_SUFFIXES
from herald.state import store
from herald.state.poison import MESSAGE
from herald.state.queues import ALL_QUEUES, make_celery
from tests.harness import Unpublished, make_reminder
from tests.ledger.helpers import add_event, count, make_writer

SQLITE_LEDGER = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
"""The ledger suite's ``ledger_url`` on its SQLite file only: no PostgreSQL server for a bar."""

LARGE = 3000
"""Items each command works through: many batches of each, a few seconds in all."""

TERMINAL_ONLY = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")
"""Variables that would make Rich pretend about the terminal: the terminal decides here."""
HIDE_CURSOR = "\x1b[?25l"
"""What Rich writes when it starts a live display on a terminal (and never to a pipe)."""
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Run:
    """A command's exit code, its stdout (a pipe) and what its terminal received (stderr)."""

    code: int
    stdout: str
    terminal: str


def on_a_terminal(env: dict[str, str], *args: str) -> Run:
    """Run ``herald ARGS`` with its stderr on a pseudo-terminal of 40 rows by 120 columns, stdout
    on a pipe; what the terminal received is read as it comes (a full terminal would stall it)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    received: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command exited and the terminal has no writer left
                return
            if not chunk:
                return
            received.append(chunk)

    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "herald.cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
        )
    finally:
        os.close(follower)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=100)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        os.close(leader)
    return Run(process.returncode, stdout.decode(), b"".join(received).decode("utf-8", "replace"))


def assert_bar_shown(run: Run, label: str, total: int) -> None:
    """``run`` drew a live bar labelled ``label`` on its terminal, ending at ``total`` of
    ``total``; its stdout holds no bar."""
    assert HIDE_CURSOR in run.terminal, f"no live display on the terminal: {run.terminal!r}"
    lines = re.split(r"[\r\n]", ESCAPES.sub("", run.terminal))
    frames = [line for line in lines if label in line]
    assert frames, f"no {label!r} bar on the terminal: {run.terminal!r}"
    assert "━" in frames[-1], frames[-1]
    assert f"{total}/{total}" in frames[-1].split(), frames[-1]
    assert label not in run.stdout
    assert "━" not in run.stdout


@pytest.fixture
def env(redis_url: str, tmp_path: Path, repo_root: Path) -> dict[str, str]:
    """A herald command's environment: this suite's Redis, nothing of the outer HERALD_*, and
    a terminal type that draws (TERM=dumb would not)."""
    outer = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in TERMINAL_ONLY}
    return {
        **outer,
        "TERM": "xterm-256color",
        "PYTHONIOENCODING": "utf-8",
        "HERALD_REDIS_URL": redis_url,
        "HERALD_TEMPLATES_DIR": str(repo_root / "templates"),
        "HERALD_OUTBOX_DIR": str(tmp_path / "outbox"),
        "HERALD_LEDGER_URL": f"sqlite:///{tmp_path}/unused-ledger.sqlite3",
    }


@pytest.fixture
def herald_settings(redis_url: str, repo_root: Path, tmp_path: Path) -> Settings:
    """Settings for building dead letters in this process (no ledger needed)."""
    return Settings(
        redis_url=redis_url,
        templates_dir=repo_root / "templates",
        outbox_dir=tmp_path / "outbox",
        caps="",
        duplicate_window=0,
        send_window="00:00-24:00",
    )


@pytest.fixture
def celery_app(herald_settings: Settings) -> Iterator[Celery]:
    app = make_celery(herald_settings)
    yield app
    app.close()


def _holds(client: redis.Redis, count_: int, prefix: str) -> list[Hold]:
    """``count_`` agreement holds, one account each, added in batches (one audit entry each)."""
    holds = [
        Hold(
            id=f"agreement:{prefix.upper()}{i}",
            account_id=f"{prefix}-{i}",
            source="agreement",
            reason="agreement signed",
            agreement=f"{prefix.upper()}{i}",
            by="import",
        )
        for i in range(count_)
    ]
    store_ = SuppressionStore(client)
    for start in range(0, len(holds), 1000):
        store_.add_many(holds[start : start + 1000])
    return holds


def _stored(settings: Settings, count_: int) -> list[str]:
    """``count_`` SMS deliveries stored and never published; their keys."""
    reminders = [make_reminder(channels=["sms"]) for _ in range(count_)]
    producer = Unpublished(settings)
    try:
        assert {r.status for r in producer.enqueue_many(reminders)} == {"accepted"}
    finally:
        producer.close()
    return [f"{r['id']}:sms" for r in reminders]


def _dead_letters(settings: Settings, client: redis.Redis, count_: int) -> list[str]:
    """``count_`` stored SMS deliveries whose retries ran out; their keys."""
    keys = _stored(settings, count_)
    _settle_dead(client, keys)
    return keys


def _settle_dead(client: redis.Redis, keys: list[str]) -> None:
    """Record ``keys`` ``dead`` as a worker does (``lua/settle.lua``, which appends each to the
    dead-letter stream)."""
    settle = client.register_script(store.script_source("settle"))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            streams = [store.delivery_redis_key(key), store.EVENTS, store.DEADLINES, store.DEADLETTER]
            args: list[Any] = [store.PREFIX, key, 0, 100_000, "dead", "retries exhausted", "", 0, 60]
            settle(keys=streams, args=args, client=pipe)
        assert pipe.execute() == [1] * len(keys)


def _add_message_letter(client: redis.Redis) -> str:
    """A dead-letter entry for a message herald could not read (never replayed)."""
    fields = {"type": MESSAGE, "queue": "herald.sms", "reason": "not JSON", "message": "garbage"}
    entry_id = client.xadd(store.DEADLETTER, fields)  # type: ignore[arg-type]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _entry_ids(client: redis.Redis) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i, _ in client.xrange(store.DEADLETTER) or []]


def _states(client: redis.Redis, keys: list[str]) -> list[str]:
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(store.delivery_redis_key(key), "state")
        return [s.decode() for s in pipe.execute()]


def _published(client: redis.Redis) -> list[str]:
    """Every delivery key in the messages waiting on herald's queues (no worker reads them)."""
    keys: list[str] = []
    for queue in ALL_QUEUES:
        for suffix in PRIORITY_SUFFIXES:
            for raw in client.lrange(queue + suffix, 0, -1):
                envelope = json.loads(raw)
                args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
                keys.extend(args[1])
    return keys


# -- the four commands, as a person at a terminal sees them --------------------------------------


def test_suppress_import_shows_its_progress(client: redis.Redis, env: dict[str, str], tmp_path: Path) -> None:
    lines = ["account_id,reason,until,agreement,categories,by"]
    lines += [f"imp-{i},agreement signed,,IMP-{i},collection,import" for i in range(LARGE)]
    path = tmp_path / "holds.csv"
    path.write_text("\n".join(lines) + "\n")

    run = on_a_terminal(env, "suppress", "import", str(path))

    assert run.code == 0, run.terminal
    assert_bar_shown(run, "importing", LARGE)
    assert f"{LARGE} added" in run.stdout
    assert "0 bad lines" in run.stdout
    assert len(SuppressionStore(client).accounts(prefix="imp-", count=2 * LARGE)) == LARGE


@SQLITE_LEDGER
def test_suppress_rebuild_shows_its_progress(
    client: redis.Redis, engine: Engine, ledger_url: str, env: dict[str, str]
) -> None:
    _holds(client, LARGE, "reb")
    make_writer(client, engine).drain()  # the ledger has every hold change
    client.flushall()  # Redis lost everything

    run = on_a_terminal({**env, "HERALD_LEDGER_URL": ledger_url}, "suppress", "rebuild")

    assert run.code == 0, run.terminal
    assert_bar_shown(run, "replaying hold and opt-out changes", LARGE)
    assert f"{LARGE} hold changes replayed for {LARGE} accounts" in run.stdout
    assert f"holds: {LARGE} restored" in run.stdout
    holds = SuppressionStore(client)
    assert holds.initialized()
    assert len(holds.accounts(prefix="reb-", count=2 * LARGE)) == LARGE


def test_deadletter_replay_shows_its_progress_and_lists_the_first_thousand(
    client: redis.Redis, herald_settings: Settings, env: dict[str, str]
) -> None:
    keys = _dead_letters(herald_settings, client, LARGE)

    run = on_a_terminal(env, "deadletter", "replay")

    assert run.code == 0, run.terminal
    assert_bar_shown(run, "replaying dead letters", LARGE)
    out = run.stdout.splitlines()
    assert out[0] == f"replayed {LARGE} deliveries"
    assert out[1:] == [f"  {key}" for key in sorted(keys)[:1000]] + [f"  ... and {LARGE - 1000} more"]
    assert set(_states(client, keys)) == {"accepted"}  # pending again: every check runs at send time
    assert length(client) == 0
    assert sorted(_published(client)) == sorted(keys)  # each published once


@SQLITE_LEDGER
def test_ledger_once_shows_its_progress(
    client: redis.Redis, engine: Engine, ledger_url: str, env: dict[str, str]
) -> None:
    for _ in range(LARGE):
        add_event(client, "acct-progress")
    _holds(client, 1000, "led")

    run = on_a_terminal({**env, "HERALD_LEDGER_URL": ledger_url}, "ledger", "--once")

    assert run.code == 0, run.terminal
    assert_bar_shown(run, "copying to the ledger", LARGE + 1000)
    assert f"copied {LARGE} events, 1000 hold changes and 0 opt-out changes" in run.stdout
    assert count(engine, delivery_events) == LARGE
    assert count(engine, hold_events) == 1000
    assert client.xlen(store.EVENTS) == 0  # trimmed up to the ledger


# -- the library halves --------------------------------------------------------------------------


def test_replay_goes_through_the_stream_in_batches_with_the_answers_of_one_step(
    client: redis.Redis, herald_settings: Settings, celery_app: Celery
) -> None:
    first = _add_message_letter(client)
    keys = _dead_letters(herald_settings, client, 150)
    middle = _add_message_letter(client)
    keys += _dead_letters(herald_settings, client, 100)
    ids = _entry_ids(client)  # first, 150 dead, middle, 100 dead
    by_id, by_key = ids[231], keys[5]  # named by entry id in the third batch of 100, by key in the first
    wanted = [by_id, by_key, "nope:sms", middle]
    done: list[int] = []

    replayed, unknown = replay(client, celery_app, herald_settings, wanted, batch=100, progress=done.append)

    chosen = sorted([keys[229], by_key])  # ids[231] is keys[229]'s entry: two message entries come before
    assert replayed == chosen
    assert unknown == ["nope:sms", middle]  # a message entry is no dead delivery
    assert done == [100, 100, 52]  # every entry gone through, batch by batch
    assert _entry_ids(client) == [i for i in ids if i not in (by_id, ids[keys.index(by_key) + 1])]
    assert first in _entry_ids(client)
    assert sorted(_published(client)) == chosen
    assert {k for k, state in zip(keys, _states(client, keys), strict=True) if state != "dead"} == set(chosen)


def test_replay_of_all_leaves_a_delivery_that_died_meanwhile_for_the_next_replay(
    client: redis.Redis, herald_settings: Settings, celery_app: Celery
) -> None:
    keys = _dead_letters(herald_settings, client, 240)
    message = _add_message_letter(client)
    late = _stored(herald_settings, 1)
    total = length(client)
    done: list[int] = []

    def advance(n: int) -> None:
        if not done:  # after the first batch, another delivery dies
            _settle_dead(client, late)
        done.append(n)

    replayed, unknown = replay(client, celery_app, herald_settings, [], batch=100, progress=advance)

    assert (replayed, unknown) == (sorted(keys), [])
    assert done == [100, 100, 41]
    assert sum(done) == total
    assert [(d.entry_id == message, d.key) for d in list_dead(client)] == [(True, ""), (False, late[0])]
    assert _states(client, late) == ["dead"]
    assert sorted(_published(client)) == sorted(keys)


@SQLITE_LEDGER
def test_drain_reports_each_batch_and_backlog_counts_what_it_will_copy(
    client: redis.Redis, engine: Engine
) -> None:
    writer = make_writer(client, engine, batch=100)
    for _ in range(1000):
        add_event(client, "acct-backlog")
    _holds(client, 250, "bk")
    assert writer.backlog() == 1250  # nothing copied yet: every stream whole

    done: list[int] = []
    report = writer.drain(progress=done.append)
    assert report.total == sum(done) == 1250
    assert max(done) <= 100
    assert writer.backlog() == 0

    for _ in range(150):  # more than a batch unread; the copied side of the events stream is trimmed
        add_event(client, "acct-backlog")
    _holds(client, 40, "bk2")  # under a batch unread, 250 copied behind the checkpoint
    assert writer.backlog() == 190

    _holds(client, 200, "bk3")  # both sides of the holds' checkpoint over a batch: not cheap
    assert writer.backlog() is None

    done.clear()
    assert writer.drain(progress=done.append).total == sum(done) == 390
    assert writer.backlog() == 0
    assert client.xlen(suppression.AUDIT) == 490  # the audit stream keeps what the ledger has
