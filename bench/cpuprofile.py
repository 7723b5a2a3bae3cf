"""Where a worker's CPU goes per delivery: the pipeline alone, in one process, under cProfile.

    .venv/bin/python bench/cpuprofile.py                  # 20,000 SMS, outbox provider
    .venv/bin/python bench/cpuprofile.py --deliveries 5000 --top 40

Starts its own redis-server (herald.ops.stack), stores ``--deliveries`` SMS reminders without
publishing them, then takes them through ``process_batch`` in batches of ``HERALD_CHANNEL_BATCH``
(100) as a worker process would — load, guards, render, slot, token, claim, the outbox
provider, record — with the default settings but an open send window. Prints the pipeline's
CPU per delivery and the functions that spend it (own time and with callees). Celery's own
cost per message (a batch) is not in it: the yardstick in bench/run.py measures that.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from herald.config import Settings  # noqa: E402
from herald.delivery.pipeline import process_batch  # noqa: E402
from herald.delivery.runtime import Runtime  # noqa: E402
from herald.ops.stack import LocalStack  # noqa: E402
from tests.harness import Unpublished, make_reminder  # noqa: E402


def _reminders(count: int) -> list[dict[str, object]]:
    out = []
    for i in range(count):
        reminder = make_reminder(id=f"p-{i}", account_id=f"acct-p-{i}", channels=["sms"])
        reminder["to"] = {"phone": f"+86138{i:08d}", "locale": "zh-CN", "timezone": "Asia/Shanghai"}
        out.append(reminder)
    return out


async def _drain(settings: Settings, keys: list[str]) -> float:
    rt = Runtime(settings)
    try:
        await process_batch(rt, "sms", keys[: settings.channel_batch])  # warm up: connections, templates
        started = time.process_time()
        size = settings.channel_batch
        await asyncio.gather(
            *(process_batch(rt, "sms", keys[i : i + size]) for i in range(size, len(keys), size))
        )
        return time.process_time() - started
    finally:
        await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25, help="functions shown in each table")
    args = parser.parse_args()
    stack = LocalStack(Path(tempfile.mkdtemp(prefix="herald-profile-")), cwd=ROOT)
    try:
        url = stack.start_redis(initialize="profile")
        os.environ.update(stack.configure({"HERALD_SEND_WINDOW": "00:00-24:00"}))
        settings = Settings(templates_dir=ROOT / "templates")
        reminders = _reminders(args.deliveries + settings.channel_batch)
        Unpublished(settings).enqueue_many(reminders)
        keys = [f"{r['id']}:sms" for r in reminders]
        profile = cProfile.Profile()
        profile.enable()
        cpu = asyncio.run(_drain(settings, keys))
        profile.disable()
        print(f"redis {url}: {args.deliveries:,} SMS deliveries through the pipeline (outbox provider)")
        print(f"pipeline CPU per delivery: {cpu / args.deliveries * 1e3:.3f} ms (cProfile adds to it)")
        stats = pstats.Stats(profile).strip_dirs()
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
