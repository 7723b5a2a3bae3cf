"""herald's throughput benchmark: one command, its own servers, printed figures.

    .venv/bin/python bench/run.py                      # every scenario, defaults below
    .venv/bin/python bench/run.py bulk --reminders 20000 --latency 0.2

Starts its own redis-server, Twilio and Aliyun stand-ins answering after ``--latency`` seconds, and
``herald worker --processes N`` plus ``herald scheduler``; enqueues reminders and prints
deliveries/s, enqueue-to-provider latency (p50 / p99, from each delivery's accepted_at and
finished_at in Redis), CPU time per delivery by process (producer, workers, Redis), the enqueue
rate, Redis memory per million deliveries, and the limiter's accuracy. Yardsticks on the same
machine with the same worker settings: a bare no-op Celery task, and the naive design (one
Celery task per delivery, sending synchronously). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from herald.holds.suppression import SuppressionStore  # noqa: E402
from herald.intake.producer import Producer  # noqa: E402
from herald.ops.stack import HERALD, LocalStack  # noqa: E402
from tests.harness import make_reminder  # noqa: E402
from tests.standins.aliyun import FakeAliyunSMS  # noqa: E402
from tests.standins.twilio import FakeTwilio  # noqa: E402

SENDER = "+15005550006"
SCENARIOS = ("yardsticks", "enqueue", "bulk", "trickle", "lanes", "limit", "memory", "footprint")


@dataclass
class Bench:
    """One benchmark environment on a local stack: Redis, the stand-in, the workers and the
    scheduler (or the yardstick's Celery workers)."""

    args: argparse.Namespace
    home: Path
    twilio: FakeTwilio | None = None
    aliyun: FakeAliyunSMS | None = None
    stack: LocalStack = field(init=False)

    def __post_init__(self) -> None:
        self.stack = LocalStack(self.home, cwd=ROOT)

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def redis_pid(self) -> int:
        assert self.stack.redis is not None
        assert self.stack.redis.proc is not None
        return self.stack.redis.proc.pid

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start_servers(self) -> None:
        self.stack.start_redis()
        self.twilio = FakeTwilio(latency=self.args.latency).start()
        self.aliyun = FakeAliyunSMS(latency=self.args.latency).start()

    def configure(self, provider: str, **extra: str) -> None:
        assert self.twilio is not None
        assert self.aliyun is not None
        self.stack.configure(
            {
                "HERALD_TEMPLATES_DIR": str(ROOT / "templates"),
                "HERALD_SMS_PROVIDER": provider,
                **self.twilio.herald_env(SENDER),
                **self.aliyun.herald_env(),
                "HERALD_PROVIDER_TIMEOUT": "30",
                "HERALD_SEND_WINDOW": "00:00-24:00",
                "HERALD_RATE_SMS": "1000000/s",  # the limiter runs, but does not limit
                "HERALD_RATE_SMS_BURST": "100000",
                **extra,
            }
        )
        os.environ["HERALD_REDIS_URL"] = self.url

    def flush(self) -> None:
        client = self.client()
        client.flushall()
        SuppressionStore(client).initialize("bench")
        assert self.twilio is not None
        assert self.aliyun is not None
        self.twilio.reset()
        self.aliyun.reset()
        (self.home / "outbox").mkdir(exist_ok=True)
        for path in (self.home / "outbox").glob("*.jsonl"):
            path.unlink()

    def start_herald(self, workers: int) -> None:
        self.stack.spawn("worker", ["worker", "--processes", str(workers), "-l", "WARNING"])
        self.stack.spawn("scheduler", ["scheduler"])
        wait_for(lambda: len(self.celery_pids()) >= workers, 60, "the worker processes")
        time.sleep(3)  # let every worker connect and subscribe before timing starts

    def start_celery(self, app: str, queue: str, workers: int, *, threads: int = 0) -> None:
        """``workers`` Celery worker processes of ``app`` on ``queue``, task events on: the solo
        pool (Celery's fastest for short tasks), or ``threads`` threads each."""
        pool = ["-P", "threads", "-c", str(threads)] if threads else ["-P", "solo"]
        for i in range(workers):
            cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, *pool]
            cmd += ["-E", "--without-gossip", "--without-mingle"]
            cmd += ["-l", "WARNING", "-n", f"yard{i}-{uuid.uuid4().hex[:4]}@%h"]
            self.stack.run(f"yardstick-{i}", cmd)

    def celery_pids(self) -> list[int]:
        """The Celery worker processes ``herald worker`` started (its supervisor's children)."""
        with contextlib.suppress(psutil.NoSuchProcess, KeyError):
            return [c.pid for c in psutil.Process(self.stack.procs["worker"].pid).children()]
        return []

    def worker_pids(self) -> list[int]:
        """Every process the workers run (supervisors, their children and the scheduler)."""
        pids = []
        for proc in self.stack.procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(proc.pid)
                pids += [parent.pid, *(c.pid for c in parent.children(recursive=True))]
        return pids

    def stop_processes(self) -> None:
        self.stack.stop()

    def close(self) -> None:
        self.stack.close()
        if self.twilio is not None:
            self.twilio.stop()
        if self.aliyun is not None:
            self.aliyun.stop()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def reminders(count: int, kind: str = "overdue_notice", tag: str = "") -> list[dict[str, Any]]:
    """``count`` SMS reminders of ``kind``, one account each (the tests' builder, fresh ids)."""
    run = tag or uuid.uuid4().hex[:6]
    out = []
    for i in range(count):
        reminder = make_reminder(id=f"b-{run}-{i}", account_id=f"acct-{run}-{i}", kind=kind, channels=["sms"])
        reminder["to"] = {"phone": f"+86138{i % 10**8:08d}", "locale": "zh-CN", "timezone": "Asia/Shanghai"}
        out.append(reminder)
    return out


def finished(client: redis.Redis) -> int:
    return int(client.xlen("herald:events"))


def timings(client: redis.Redis, ids: list[str]) -> tuple[list[float], list[float], dict[str, int]]:
    """accepted_at and finished_at of each delivery, and the count per outcome."""
    accepted, done, outcomes = [], [], {}
    for start in range(0, len(ids), 5000):
        with client.pipeline(transaction=False) as pipe:
            for rid in ids[start : start + 5000]:
                pipe.hmget(f"herald:d:{rid}:sms", "accepted_at", "finished_at", "outcome")
            for a, f, o in pipe.execute():
                name = (o or b"?").decode()
                outcomes[name] = outcomes.get(name, 0) + 1
                if a and f:
                    accepted.append(float(a))
                    done.append(float(f))
    return accepted, done, outcomes


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n== {title}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    sys.stdout.flush()


# -- scenarios ------------------------------------------------------------------------------


def scenario_bulk(bench: Bench, provider: str) -> float:
    """enqueue_many from one producer process; workers already running."""
    n = bench.args.reminders
    bench.configure(provider)
    bench.flush()
    bench.start_herald(bench.args.workers)
    client = bench.client()
    base_memory = int(client.info("memory")["used_memory"])
    batch = reminders(n)
    ids = [r["id"] for r in batch]
    producer = Producer()
    worker_pids = bench.worker_pids()
    cpu_before = (cpu_seconds(worker_pids), cpu_seconds([bench.redis_pid]), time.process_time())
    stats_before = client.info("stats")
    started = time.time()
    producer.enqueue_many(batch)
    enqueued = time.time() - started
    cpu_producer = time.process_time() - cpu_before[2]
    wait_for(lambda: finished(client) >= n, 3600, f"{n} deliveries")
    cpu_here = time.process_time() - cpu_before[2] - cpu_producer  # the stand-in's thread, mostly
    cpu_workers = cpu_seconds(worker_pids) - cpu_before[0]
    cpu_redis = cpu_seconds([bench.redis_pid]) - cpu_before[1]
    stats = client.info("stats")
    commands = int(stats["total_commands_processed"]) - int(stats_before["total_commands_processed"])
    reads = int(stats["total_reads_processed"]) - int(stats_before["total_reads_processed"])
    memory = int(client.info("memory")["used_memory"]) - base_memory
    accepted, done, outcomes = timings(client, ids)
    elapsed = max(done) - started
    latency = [f - a for a, f in zip(accepted, done, strict=True)]
    rate = n / elapsed
    report(
        f"bulk: {n:,} SMS reminders, provider {provider}"
        + (f" ({bench.args.latency * 1000:.0f} ms)" if provider != "outbox" else "")
        + f", {bench.args.workers} worker processes",
        [
            ("deliveries/s", f"{rate:,.0f}  (enqueue start to last delivery, {elapsed:.1f} s)"),
            ("outcomes", ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))),
            ("enqueue rate", f"{n / enqueued:,.0f} reminders/s from one producer process"),
            ("latency p50 / p99", f"{percentile(latency, 0.5):.2f} s / {percentile(latency, 0.99):.2f} s"),
            (
                "CPU per delivery",
                f"workers {cpu_workers / n * 1e3:.2f} ms, redis {cpu_redis / n * 1e3:.2f} ms, "
                f"producer {cpu_producer / n * 1e3:.2f} ms"
                + (f", {provider} stand-in {cpu_here / n * 1e3:.2f} ms" if provider != "outbox" else ""),
            ),
            (
                "Redis per delivery",
                f"{commands / n:.1f} commands in {reads / n:.2f} reads (round trips, every client)",
            ),
            (
                "redis memory",
                f"{memory / n * 1e6 / 2**20:,.0f} MiB per million finished deliveries (not yet copied)",
            ),
            (
                "worker RSS",
                f"{sum(_rss(p) for p in worker_pids) / 2**20:,.0f} MiB in {len(worker_pids)} processes",
            ),
        ],
    )
    bench.stop_processes()
    return rate


def _rss(pid: int) -> int:
    with contextlib.suppress(psutil.NoSuchProcess):
        return int(psutil.Process(pid).memory_info().rss)
    return 0


def _trickle_producer(url: str, items: list[dict[str, Any]]) -> None:
    os.environ["HERALD_REDIS_URL"] = url
    producer = Producer()
    for item in items:
        producer.enqueue(item)


def scenario_trickle(bench: Bench) -> float:
    """Several producer processes, one enqueue call per reminder, Twilio stand-in."""
    n, producers = bench.args.trickle, bench.args.producers
    bench.configure("twilio")
    bench.flush()
    bench.start_herald(bench.args.workers)
    client = bench.client()
    batch = reminders(n)
    ids = [r["id"] for r in batch]
    started = time.time()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_trickle_producer, args=(bench.url, batch[i::producers])) for i in range(producers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    enqueued = time.time() - started
    wait_for(lambda: finished(client) >= n, 3600, f"{n} deliveries")
    accepted, done, outcomes = timings(client, ids)
    elapsed = max(done) - started
    latency = [f - a for a, f in zip(accepted, done, strict=True)]
    rate = n / elapsed
    report(
        f"trickle: {n:,} reminders, one enqueue call each from {producers} producer processes, "
        f"Twilio stand-in ({bench.args.latency * 1000:.0f} ms)",
        [
            ("deliveries/s", f"{rate:,.0f}  ({elapsed:.1f} s)"),
            ("outcomes", ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))),
            ("enqueue rate", f"{n / enqueued:,.0f} reminders/s over {producers} producers, one call each"),
            ("latency p50 / p99", f"{percentile(latency, 0.5):.2f} s / {percentile(latency, 0.99):.2f} s"),
        ],
    )
    bench.stop_processes()
    return rate


def scenario_lanes(bench: Bench) -> None:
    """An agreement SMS behind a backlog of collection SMS, under a shared provider limit."""
    n = bench.args.backlog
    limit = bench.args.lane_limit
    bench.configure("outbox", HERALD_RATE_SMS=f"{limit}/s", HERALD_RATE_SMS_BURST=str(max(1, limit // 10)))
    bench.flush()
    producer = Producer()
    backlog = reminders(n, tag="coll")
    producer.enqueue_many(backlog)  # queued before any worker runs: a real backlog
    bench.start_herald(bench.args.workers)
    client = bench.client()
    wait_for(lambda: finished(client) >= 2000, 600, "the backlog to start draining")
    urgent = reminders(5, kind="installment_due", tag="agr")
    producer.enqueue_many(urgent)
    ids = [r["id"] for r in urgent]
    wait_for(
        lambda: all(client.hget(f"herald:d:{i}:sms", "finished_at") for i in ids), 600, "the agreement SMS"
    )
    accepted, done, outcomes = timings(client, ids)
    drained = finished(client)
    latency = [f - a for a, f in zip(accepted, done, strict=True)]
    report(
        f"fair lanes: 5 agreement SMS enqueued behind {n:,} collection SMS, provider limit {limit}/s",
        [
            (
                "agreement latency",
                f"max {max(latency):.2f} s, median {statistics.median(latency):.2f} s; outcomes {outcomes}",
            ),
            ("collection backlog", f"{n - drained:,} still waiting when the last agreement SMS went"),
            ("backlog at the limit", f"would take {n / limit:,.0f} s to drain"),
        ],
    )
    bench.stop_processes()


def scenario_limit(bench: Bench) -> None:
    """A limit of 100/s with 4 worker processes, measured at the stand-in over 30 s."""
    rate, seconds, workers = bench.args.limit, bench.args.limit_seconds, bench.args.limit_workers
    bench.configure("twilio", HERALD_RATE_SMS=f"{rate}/s", HERALD_RATE_SMS_BURST=str(max(1, rate // 10)))
    bench.flush()
    assert bench.twilio is not None
    bench.twilio.latency = 0.0
    bench.start_herald(workers)
    n = int(rate * (seconds + 15))
    Producer().enqueue_many(reminders(n))
    wait_for(lambda: len(bench.twilio.accepted) >= rate * (seconds + 5), 3600, "the limited run")
    sent = sorted((m["at"], max(1, int(m["num_segments"]))) for m in bench.twilio.accepted)
    times = [t for t, _ in sent]
    start = times[0] + 2.0  # past the first burst
    window = [units for t, units in sent if start <= t < start + seconds]
    per_second = sum(window) / seconds
    busiest, busiest_messages = 0, 0
    for i, (t, _) in enumerate(sent):
        inside = [units for u, units in sent[i:] if u < t + 1.0]
        if sum(inside) > busiest:
            busiest, busiest_messages = sum(inside), len(inside)
    report(
        f"limiter: {rate}/s (burst {max(1, rate // 10)}), {workers} worker processes, "
        f"{seconds} s at the stand-in; a unit is an SMS segment",
        [
            (
                "delivered rate",
                f"{per_second:.1f} segments/s ({(per_second / rate - 1) * 100:+.1f}% of the limit), "
                f"{len(window) / seconds:.1f} messages/s",
            ),
            ("busiest 1-second window", f"{busiest} segments ({busiest_messages} messages)"),
        ],
    )
    bench.twilio.latency = bench.args.latency
    bench.stop_processes()


def _added(client: redis.Redis) -> int:
    """Events ever added to the stream (its length is trimmed at HERALD_EVENTS_MAXLEN)."""
    with contextlib.suppress(redis.ResponseError):
        return int(client.xinfo_stream("herald:events")["entries-added"])
    return 0


def _mib_list(sizes: list[int]) -> str:
    return ", ".join(f"{size / 2**20:.0f}" for size in sizes)


def scenario_memory(bench: Bench) -> None:
    """A long run: worker RSS sampled as deliveries finish, with a bounded backlog."""
    n, chunk, backlog = bench.args.memory_reminders, 10_000, 100_000
    bench.configure("outbox")
    bench.flush()
    bench.start_herald(bench.args.workers)
    client = bench.client()
    producer = Producer()
    step = max(chunk, n // 10)
    samples: list[tuple[int, int, list[int]]] = []
    started = time.time()
    sent = 0
    next_sample = 0
    while True:
        done = _added(client)
        if done >= next_sample:
            pids = [p for p in bench.worker_pids() if _rss(p)]
            samples.append((done, sum(_rss(p) for p in pids), sorted(_rss(p) for p in pids)))
            print(f"  {done:>9,} finished  worker RSS {samples[-1][1] / 2**20:,.0f} MiB", flush=True)
            next_sample += step
        if done >= n:
            break
        if sent < n and sent - done < backlog:
            size = min(chunk, n - sent)
            producer.enqueue_many(reminders(size, tag=f"m{sent}"))
            sent += size
        else:
            time.sleep(0.5)
    elapsed = time.time() - started
    first = next(s for s in samples if s[0] >= step)  # after warm-up: the first tenth
    last = samples[-1]
    report(
        f"memory: {n:,} SMS reminders, outbox provider, {bench.args.workers} worker processes, "
        f"backlog at most {backlog:,}",
        [
            ("deliveries/s", f"{n / elapsed:,.0f} ({elapsed:.0f} s)"),
            *[
                (f"RSS at {done:,}", f"{total / 2**20:,.0f} MiB ({_mib_list(each)})")
                for done, total, each in samples
            ],
            (
                "growth after warm-up",
                f"{(last[1] - first[1]) / 2**20:+,.0f} MiB from {first[0]:,} to {last[0]:,} deliveries",
            ),
        ],
    )
    bench.stop_processes()


def _footprint(client: redis.Redis) -> dict[str, tuple[int, int, float]]:
    """Redis's keys by family (``herald:r``, ``herald:d``, a queue...): count, bytes, and
    byte-days (bytes times the days each key has left to live; 0 for a key without expiry)."""
    families: dict[str, tuple[int, int, float]] = {}
    keys = list(client.scan_iter(count=5000))
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        with client.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.memory_usage(key, samples=0)
                pipe.ttl(key)
            answers = pipe.execute()
        for key, size, ttl in zip(chunk, answers[::2], answers[1::2], strict=True):
            text = key.decode(errors="replace")
            family = ":".join(text.split(":")[:2]) if text.startswith("herald:") else text.split(":")[0][:24]
            count, total, days = families.get(family, (0, 0, 0.0))
            size = int(size or 0)
            families[family] = (count + 1, total + size, days + size * max(int(ttl), 0) / 86400)
    return families


def scenario_footprint(bench: Bench) -> None:
    """Redis memory per delivery: stored and published (live), finished, then copied by the
    ledger and compacted; and what a lender sending 3 million a day would hold."""
    n = bench.args.footprint_reminders
    bench.configure("outbox", HERALD_COMPACT_AFTER="0")
    bench.flush()
    client = bench.client()
    base = int(client.info("memory")["used_memory"])
    Producer().enqueue_many(reminders(n))
    live = int(client.info("memory")["used_memory"]) - base
    bench.start_herald(bench.args.workers)
    wait_for(lambda: finished(client) >= n, 3600, f"{n} deliveries")
    bench.stop_processes()
    whole = int(client.info("memory")["used_memory"]) - base
    done = subprocess.run(
        [*HERALD, "ledger", "--once"],
        env=bench.stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    compacted = int(client.info("memory")["used_memory"]) - base
    families = _footprint(client)
    byte_days = sum(days for _, _, days in families.values())
    per_day = 3_000_000
    steady = per_day * byte_days / n
    rows = [
        ("live (stored, published)", f"{live / n * 1e6 / 2**30:.2f} GiB per million deliveries"),
        ("finished, not yet copied", f"{whole / n * 1e6 / 2**30:.2f} GiB per million deliveries"),
        ("finished, copied, compacted", f"{compacted / n * 1e6 / 2**30:.2f} GiB per million deliveries"),
        ("ledger --once", done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "(no output)"),
        *[
            (
                f"  {family}",
                f"{count:,} keys, {total / n:,.0f} bytes and {days / n:,.1f} byte-days per delivery",
            )
            for family, (count, total, days) in sorted(families.items(), key=lambda kv: -kv[1][1])
            if total >= n  # a byte per delivery or more
        ],
        (
            "3,000,000 a day, steady state",
            f"{steady / 2**30:.1f} GiB (each key's bytes times the days it has left to live)",
        ),
    ]
    report(f"footprint: {n:,} SMS reminders, outbox provider, Redis memory", rows)


def scenario_enqueue(bench: Bench) -> float:
    """enqueue_many from one producer process, no worker running: the producer's own rate."""
    n = bench.args.reminders
    bench.configure("outbox")
    bench.flush()
    batch = reminders(n)
    producer = Producer()
    started, cpu = time.perf_counter(), time.process_time()
    results = producer.enqueue_many(batch)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    accepted = sum(r.status == "accepted" for r in results)
    rate = n / elapsed
    report(
        f"enqueue: {n:,} reminders with enqueue_many, one producer process, no worker running",
        [
            ("enqueue rate", f"{rate:,.0f} reminders/s ({accepted:,} accepted)"),
            ("producer CPU", f"{cpu / n * 1e3:.3f} ms per reminder"),
        ],
    )
    return rate


def scenario_yardsticks(bench: Bench) -> tuple[float, float]:
    """A bare no-op task and the naive design, same worker settings, queue filled first."""
    from bench import yardstick

    bench.configure("twilio")
    bench.flush()
    yardstick.app.conf.broker_url = bench.url
    client = bench.client()

    def drain(queue: str, count: int) -> float:
        started = time.time()
        wait_for(lambda: client.llen(queue) == 0 and client.hlen("unacked") == 0, 3600, queue)
        return count / (time.time() - started)

    noops = bench.args.noops
    with yardstick.app.producer_or_acquire() as producer:
        for _ in range(noops):
            yardstick.noop.apply_async(queue=yardstick.NOOP_QUEUE, producer=producer)
    bench.start_celery("bench.yardstick", yardstick.NOOP_QUEUE, bench.args.workers)
    noop_rate = drain(yardstick.NOOP_QUEUE, noops)
    bench.stop_processes()

    naive_n = bench.args.naive
    data = {"lender": "Herald Credit", "name": "李伟", "amount": "2490.72", "days": 9}
    with yardstick.app.producer_or_acquire() as producer:
        for i in range(naive_n):
            yardstick.naive.apply_async(
                (f"+86139{i:08d}", data), queue=yardstick.NAIVE_QUEUE, producer=producer
            )
    bench.start_celery("bench.yardstick", yardstick.NAIVE_QUEUE, bench.args.workers, threads=bench.args.slots)
    naive_rate = drain(yardstick.NAIVE_QUEUE, naive_n)
    bench.stop_processes()
    report(
        f"yardsticks: {bench.args.workers} Celery worker processes, task events on: the no-op task on "
        f"the solo pool, the naive design on threads x {bench.args.slots}",
        [
            ("bare no-op task", f"{noop_rate:,.0f} tasks/s ({noops:,} tasks)"),
            (
                "naive design",
                f"{naive_rate:,.0f} deliveries/s ({naive_n:,}, one task each, synchronous send, "
                f"{bench.args.latency * 1000:.0f} ms stand-in)",
            ),
        ],
    )
    return noop_rate, naive_rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        default=["yardsticks", "enqueue", "bulk", "trickle", "lanes", "limit", "footprint"],
    )
    parser.add_argument("--reminders", type=int, default=100_000, help="bulk: reminders (default 100,000)")
    parser.add_argument(
        "--memory-reminders", type=int, default=1_000_000, help="memory: reminders (default 1,000,000)"
    )
    parser.add_argument(
        "--footprint-reminders", type=int, default=50_000, help="footprint: reminders (default 50,000)"
    )
    parser.add_argument("--trickle", type=int, default=10_000, help="trickle: reminders (default 10,000)")
    parser.add_argument("--producers", type=int, default=4, help="trickle: producer processes (default 4)")
    parser.add_argument(
        "--backlog", type=int, default=100_000, help="lanes: collection backlog (default 100,000)"
    )
    parser.add_argument("--lane-limit", type=int, default=500, help="lanes: the provider's limit per second")
    parser.add_argument("--limit", type=int, default=100, help="limiter: the limit per second (default 100)")
    parser.add_argument(
        "--limit-seconds", type=int, default=30, help="limiter: seconds measured (default 30)"
    )
    parser.add_argument("--limit-workers", type=int, default=4, help="limiter: worker processes (default 4)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)"
    )
    parser.add_argument("--slots", type=int, default=16, help="naive yardstick: threads per worker process")
    parser.add_argument(
        "--latency", type=float, default=0.2, help="the stand-in's answer delay (default 0.2 s)"
    )
    parser.add_argument("--noops", type=int, default=20_000, help="yardstick: no-op tasks (default 20,000)")
    parser.add_argument(
        "--naive", type=int, default=2_000, help="yardstick: naive deliveries (default 2,000)"
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    bench = Bench(args, home)
    print(
        f"herald bench on {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"logs in {home}"
    )
    bench.start_servers()
    figures: dict[str, float] = {}
    try:
        for name in args.scenarios:
            if name == "yardsticks":
                figures["noop"], figures["naive"] = scenario_yardsticks(bench)
            elif name == "bulk":
                figures["bulk-outbox"] = scenario_bulk(bench, "outbox")
                figures["bulk-twilio"] = scenario_bulk(bench, "twilio")
                figures["bulk-aliyun"] = scenario_bulk(bench, "aliyun")
            elif name == "enqueue":
                figures["enqueue"] = scenario_enqueue(bench)
            elif name == "trickle":
                figures["trickle"] = scenario_trickle(bench)
            elif name == "lanes":
                scenario_lanes(bench)
            elif name == "limit":
                scenario_limit(bench)
            elif name == "memory":
                scenario_memory(bench)
            elif name == "footprint":
                scenario_footprint(bench)
            else:
                parser.error(f"unknown scenario {name!r}")
    finally:
        bench.close()
    if "noop" in figures:
        rows = []
        for key in ("bulk-outbox", "bulk-twilio", "bulk-aliyun", "trickle"):
            if key in figures:
                rows.append(
                    (
                        key,
                        f"{figures[key] / figures['noop']:.1f}x the no-op task, "
                        f"{figures[key] / figures['naive']:.1f}x the naive design",
                    )
                )
        if rows:
            report("herald against the yardsticks", rows)


if __name__ == "__main__":
    main()
