"""Aliyun SMS clients compared: herald's AliyunSMSProvider (one aiohttp session per process)
against the official SDK's async call (``alibabacloud-dysmsapi20170525``), on the same stand-in.

    PYTHONPATH=.:src .venv/bin/python bench/aliyun_client.py            # herald only, if no SDK
    PYTHONPATH=.:src:/tmp/aliyun-sdk-venv/lib/python3.11/site-packages:.venv/lib/python3.11/site-packages \\
        /tmp/aliyun-sdk-venv/bin/python bench/aliyun_client.py --messages 2000 --concurrency 50 200

The SDK is not one of herald's dependencies: install it in a throwaway virtualenv (``pip install
alibabacloud-dysmsapi20170525``) and put herald's environment after it on the path, as above.
Without it, herald's figures are printed and the SDK's are skipped with a note.

The stand-in (``tests/standins/aliyun.py``) runs in a child process, so that the figures are the
client's alone: it answers every request after ``--latency`` seconds (default 0.2) and counts the
most requests it held at once. For each client and each concurrency C, ``--messages`` sends
(default 2,000), at most C in flight, each to its own number. Printed: messages/s (wall clock of
the whole run), the peak in flight seen at the stand-in, CPU ms per message of this process
(``time.process_time``), and the sends that failed. Both clients sign with Aliyun's RPC signature
v1 (HMAC-SHA1): the SDK is configured with ``signature_algorithm="v2"``, which selects it; its
default, ACS3-HMAC-SHA256 in a header, is not spoken by the stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT / "src", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from herald.channels.aliyun_sms import AliyunSMSProvider  # noqa: E402
from herald.channels.base import Message  # noqa: E402
from herald.config import Settings  # noqa: E402
from herald.rendering.renderer import Approved, Rendered  # noqa: E402

SIGN = "赫拉德信贷"
TEMPLATE = "SMS_480210041"
PARAMS = {"name": "李伟", "days": "9", "amount": "¥2,490.72", "due": "2026年11月28日", "phone": "95188"}


# -- the stand-in, in a child process ----------------------------------------------------------


def serve(latency: float) -> None:
    """Child mode: run the stand-in and answer ``reset`` / ``stats`` / ``quit`` lines on stdin."""
    from tests.standins.aliyun import FakeAliyunSMS

    with FakeAliyunSMS(sign_name=SIGN, latency=latency) as fake:
        print(json.dumps({"port": fake.port, "key_id": fake.access_key_id, "secret": fake.access_key_secret}))
        sys.stdout.flush()
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                fake.reset()
                print(json.dumps({"ok": True}))
            elif command == "stats":
                print(json.dumps({"peak": fake.peak_in_flight, "accepted": len(fake.accepted)}))
            elif command == "quit":
                break
            sys.stdout.flush()


class StandIn:
    """The child process that serves the stand-in."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--latency", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.port, self.key_id, self.secret = int(hello["port"]), str(hello["key_id"]), str(hello["secret"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stand-in process did not start")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(10)


# -- the clients -------------------------------------------------------------------------------


@dataclass
class Figures:
    client: str
    concurrency: int
    messages: int
    seconds: float
    cpu: float
    peak: int
    failed: int

    def line(self) -> str:
        return (
            f"{self.client:<28} C={self.concurrency:<4} {self.messages / self.seconds:8.0f} msg/s   "
            f"peak in flight {self.peak:4d}   {1000 * self.cpu / self.messages:6.2f} CPU ms/msg   "
            f"failed {self.failed}"
        )


def number(i: int) -> str:
    return f"86138{i:08d}"


async def run_bounded(send: Callable[[int], Awaitable[bool]], messages: int, concurrency: int) -> int:
    """Send ``messages`` with at most ``concurrency`` in flight; the number that failed."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with gate:
            return await send(i)

    results = await asyncio.gather(*(one(i) for i in range(messages)))
    return sum(1 for ok in results if not ok)


async def herald_client(stand_in: StandIn, messages: int, concurrency: int) -> tuple[float, float, int]:
    """herald's provider: one session, ``in_flight`` = C."""
    settings = Settings(
        ALIBABA_CLOUD_ACCESS_KEY_ID=stand_in.key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=stand_in.secret,
        aliyun_sign_name=SIGN,
        aliyun_sms_endpoint=f"http://127.0.0.1:{stand_in.port}",
        in_flight=concurrency,
    )
    rendered = Rendered("sms", "zh-CN", text="…", approved={"aliyun": Approved(TEMPLATE, PARAMS)})
    provider = AliyunSMSProvider("sms", settings)
    await provider.start()

    async def send(i: int) -> bool:
        message = Message(
            f"b-{i}:sms", f"b-{i}", "acct", "overdue_notice", "collection", "sms", "+" + number(i), rendered
        )
        try:
            await provider.send(message)
        except Exception:
            return False
        return True

    await run_bounded(send, concurrency, concurrency)  # warm up: connections open
    stand_in.ask("reset")
    started, cpu = time.perf_counter(), time.process_time()
    failed = await run_bounded(send, messages, concurrency)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await provider.close()
    return seconds, cpu, failed


async def sdk_client(stand_in: StandIn, messages: int, concurrency: int) -> tuple[float, float, int]:
    """The official SDK's ``send_sms_async`` on one Client."""
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_dysmsapi20170525.models import SendSmsRequest
    from alibabacloud_tea_openapi.models import Config

    config = Config(
        access_key_id=stand_in.key_id,
        access_key_secret=stand_in.secret,
        endpoint=f"127.0.0.1:{stand_in.port}",
        protocol="http",
        signature_algorithm="v2",
    )
    client = Client(config)
    template_param = json.dumps(PARAMS, ensure_ascii=False)

    async def send(i: int) -> bool:
        request = SendSmsRequest(
            phone_numbers=number(i), sign_name=SIGN, template_code=TEMPLATE, template_param=template_param
        )
        try:
            answer = await client.send_sms_async(request)
        except Exception:
            return False
        return bool(answer.body.code == "OK")

    await run_bounded(send, concurrency, concurrency)
    stand_in.ask("reset")
    started, cpu = time.perf_counter(), time.process_time()
    failed = await run_bounded(send, messages, concurrency)
    return time.perf_counter() - started, time.process_time() - cpu, failed


def sdk_installed() -> bool:
    try:
        import alibabacloud_dysmsapi20170525.client  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.latency)
        return 0
    clients: list[tuple[str, Callable[[StandIn, int, int], Awaitable[tuple[float, float, int]]]]] = [
        ("herald AliyunSMSProvider", herald_client)
    ]
    if sdk_installed():
        clients.append(("SDK send_sms_async", sdk_client))
    print(
        f"{args.messages} messages per run, stand-in answering after {args.latency * 1000:.0f} ms "
        f"in its own process; Python {sys.version.split()[0]}"
    )
    stand_in = StandIn(args.latency)
    try:
        for concurrency in args.concurrency:
            for name, run in clients:
                seconds, cpu, failed = asyncio.run(run(stand_in, args.messages, concurrency))
                stats = stand_in.ask("stats")
                print(
                    Figures(name, concurrency, args.messages, seconds, cpu, int(stats["peak"]), failed).line()
                )
    finally:
        stand_in.close()
    if not sdk_installed():
        print(
            "The official SDK (alibabacloud-dysmsapi20170525) is not installed here, so only herald's "
            "client was measured. Install it in a throwaway virtualenv and run this script with "
            "herald's environment after it on PYTHONPATH (see the docstring)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
