"""Redis memory for N suppression holds (default 1,000,000), on a redis-server of its own.

    .venv/bin/python bench/holds_memory.py [N]

Each hold is an agreement hold on its own account, written as `herald suppress import` writes
them (pipelined, with the hold mark, the account index and the audit entry). Prints the
memory used by the holds with and without their audit stream.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import redis

from herald.holds.suppression import AUDIT, Hold, SuppressionStore
from herald.ops.stack import LocalStack


def main(count: int) -> None:
    stack = LocalStack(Path(tempfile.mkdtemp(prefix="herald-bench-")))
    try:
        client = redis.Redis.from_url(stack.start_redis())
        base = int(client.info("memory")["used_memory"])
        holds = SuppressionStore(client)
        started = time.perf_counter()
        batch: list[Hold] = []
        for i in range(count):
            batch.append(
                Hold(
                    id=f"agreement:AGR-{i:07d}",
                    account_id=f"acct-{i:08d}",
                    source="agreement",
                    reason="repayment agreement signed",
                    agreement=f"AGR-{i:07d}",
                    by="import",
                )
            )
            if len(batch) == 1000:
                holds.add_many(batch)
                batch = []
        if batch:
            holds.add_many(batch)
        elapsed = time.perf_counter() - started
        used = int(client.info("memory")["used_memory"]) - base
        client.delete(AUDIT)
        without_audit = int(client.info("memory")["used_memory"]) - base
        print(f"holds: {count:,}  written in {elapsed:.1f} s ({count / elapsed:,.0f}/s)")
        for label, size in (("with", used), ("without", without_audit)):
            print(
                f"redis memory {label} the audit stream: {size / 2**20:,.0f} MiB ({size / count:,.0f} B/hold)"
            )
    finally:
        stack.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
