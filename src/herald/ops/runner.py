"""``herald run``: herald for real on embedded defaults.

Starts its own redis-server (own port, own data directory, AOF on), a worker (with its host's
/metrics), the scheduler, the reconciler, the ledger writer (a SQLite file), the API with the
operator page, and Flower; creates a development API key and Flower password and prints them with every URL;
enqueues the sample reminders (built relative to now); shows each sample's outcome and what
landed in the outbox; then keeps running until Ctrl-C, or, with ``--once``, checks that every
service answers, stops everything and exits non-zero on any surprise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import redis
import requests
from rich.console import Console
from rich.table import Table

from herald import clock
from herald.access.apikeys import KeyStore
from herald.config import Settings
from herald.display.masking import mask_address
from herald.holds.suppression import SuppressionStore
from herald.intake.producer import Producer
from herald.ledger.db import open_ledger
from herald.ledger.initcheck import check_init
from herald.ops.embedded import EmbeddedRedisError, free_port, port_free
from herald.ops.stack import LocalStack
from herald.rendering.catalog import load_catalog
from herald.rendering.samples import sample_reminders
from herald.state.status import read_status

FINAL_WAIT_STEP = 0.25
_SHARED = ("HERALD_REDIS_URL", "HERALD_LEDGER_URL", "HERALD_OUTBOX_DIR", "HERALD_PUBLIC_URL")
"""The settings another shell needs to use the embedded herald (written to herald.env)."""


def _night(delivery: dict[str, Any]) -> bool:
    """A collection sample outside the send window waits for the next opening: expected."""
    return bool(
        delivery["state"] == "scheduled" and (delivery["reason"] or "").startswith("outside the send window")
    )


class Runner:
    """``herald run`` on a :class:`LocalStack`: starts every process, delivers the samples,
    checks every service, and stops it all."""

    def __init__(
        self,
        home: Path,
        redis_port: int,
        timeout: float,
        console: Console,
        api_port: int = 8000,
        show_outbox: bool = False,
    ) -> None:
        self.home = home.resolve()
        self.redis_port = redis_port
        self.api_port = api_port
        self.timeout = timeout
        self.console = console
        self.stack = LocalStack(self.home)
        self.dev_key: tuple[redis.Redis, str] | None = None  # revoked on stop
        self.show_outbox = show_outbox
        self.services: list[tuple[str, str]] = []
        self.env_file = self.home / "herald.env"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process started (the stack's)."""
        return self.stack.env

    def say(self, message: str) -> None:
        """One line of progress."""
        self.console.print(message, highlight=False, soft_wrap=True)

    def start_redis(self) -> str:
        """Start redis-server on the chosen (or a free) port; returns its URL."""
        port = self.redis_port if port_free(self.redis_port) else free_port()
        if port != self.redis_port:
            self.say(f"port {self.redis_port} is busy; using {port} for redis-server")
        url = self.stack.start_redis(port)
        self.say(f"redis-server  {url}  (data in {self.home / 'redis'}, AOF on)")
        return url

    def spawn(self, name: str, args: list[str]) -> None:
        """Start a herald process with the embedded environment, logging to var/log."""
        proc = self.stack.spawn(name, args)
        self.say(f"{name:<13} pid {proc.pid}  (log: {self.stack.log_path(name)})")

    def stop(self) -> None:
        """Stop everything started, herald processes first and redis-server last; revoke the
        development key first (it was printed, and Redis keeps it)."""
        if self.dev_key is not None:
            client, key_id = self.dev_key
            with contextlib.suppress(redis.RedisError):
                KeyStore(client).revoke(key_id)
            self.dev_key = None
        self.env_file.unlink(missing_ok=True)  # it names a key that no longer works
        for name in self.stack.close():
            self.say(f"{name} did not stop in time; it was killed")

    def main(self, once: bool) -> int:
        """Run; returns the process exit code."""
        outbox = self.home / "outbox"

        def _interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _interrupt)
        try:
            url = self.start_redis()
            self.stack.env = {
                **os.environ,
                **{k: v for k, v in self.stack.local_env(url).items() if k != "HERALD_LEDGER_URL"},
                # the outbox unless the environment points a channel at a real provider
                "HERALD_SMS_PROVIDER": os.environ.get("HERALD_SMS_PROVIDER") or "outbox",
                "HERALD_EMAIL_PROVIDER": os.environ.get("HERALD_EMAIL_PROVIDER") or "outbox",
                "HERALD_PUSH_PROVIDER": os.environ.get("HERALD_PUSH_PROVIDER") or "outbox",
            }
            api_port = self.api_port if port_free(self.api_port) else free_port()
            api_url = f"http://127.0.0.1:{api_port}"
            flower_port = 5555 if port_free(5555) else free_port()
            asked = os.environ.get("HERALD_METRICS_PORT", "").strip()  # a Prometheus pointed at it
            metrics_port = int(asked) if asked.isdigit() and int(asked) else 9808
            metrics_port = metrics_port if port_free(metrics_port) else free_port()
            self.env.setdefault("HERALD_PUBLIC_URL", api_url)
            self.env.setdefault("HERALD_SECRET_KEY", secrets.token_urlsafe(32))
            self.env.setdefault("HERALD_LEDGER_URL", self.stack.local_env(url)["HERALD_LEDGER_URL"])
            self.env.setdefault("HERALD_FLOWER_PASSWORD", secrets.token_urlsafe(12))
            self.env.setdefault("HERALD_FLOWER_USER", "herald")
            self.env["HERALD_FLOWER_PORT"] = str(flower_port)
            self.env["HERALD_METRICS_PORT"] = str(metrics_port)
            client = redis.Redis.from_url(url)
            holds = SuppressionStore(client)
            if not holds.initialized():
                # a Redis that lost its data while the ledger kept its history: rebuild, never mark
                check_init(client, open_ledger(self.env["HERALD_LEDGER_URL"]))
                holds.initialize("herald run")
            dev_key, record = KeyStore(client).create(
                "herald-run", ["producer", "operator", "admin"], by="herald run (development key)"
            )
            self.dev_key = (client, record.key_id)
            self.spawn("worker", ["worker", "-n", "herald@%h", "-l", "INFO"])
            self.spawn("scheduler", ["scheduler"])
            self.spawn("reconciler", ["reconcile"])
            self.spawn("ledger", ["ledger"])
            self.spawn("api", ["api", "--port", str(api_port)])
            self.spawn("flower", ["flower"])
            flower_url = f"http://127.0.0.1:{flower_port}"
            flower_auth = (self.env["HERALD_FLOWER_USER"], self.env["HERALD_FLOWER_PASSWORD"])
            worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            self.services = [
                ("API", f"{api_url}  (OpenAPI: {api_url}/docs)"),
                ("operator page", f"{api_url}/operator  (sign in with the development key)"),
                ("development key", f"{dev_key}  (producer, operator, admin; Authorization: Bearer <key>)"),
                ("Flower", f"{flower_url}  (user {flower_auth[0]}, password {flower_auth[1]})"),
                ("metrics", f"{worker_metrics} (workers), {api_url}/metrics (API)"),
                ("ledger", f"{self.env['HERALD_LEDGER_URL']}  (herald history ACCOUNT)"),
                ("redis", url),
            ]
            self.write_env_file(api_url, dev_key)
            self.say("\nherald is up:")
            self.show_services()
            self.say("")
            code = self.deliver_samples(Settings(redis_url=url, outbox_dir=outbox))
            code = max(code, self.check_services(api_url, dev_key, flower_url, flower_auth, metrics_port))
            if once:
                return code
            self.say("\nherald is running:")
            self.show_services()
            self.say("\nIn another terminal (the README walks you through it):")
            self.say(f"  source {self.env_file}    # herald on PATH, HERALD_REDIS_URL, the ledger, the key")
            self.say("  herald enqueue examples/reminders.jsonl")
            self.say("Press Ctrl-C to stop everything.")
            while not (dead := self.stack.exited()):
                time.sleep(1)
            self.say(f"[red]{', '.join(dead)} stopped unexpectedly; stopping the rest[/red]")
            return 1
        except KeyboardInterrupt:
            self.say("\nstopping…")
            return 0
        except (RuntimeError, EmbeddedRedisError) as exc:
            self.say(f"[red]error:[/red] {exc}")
            return 2
        finally:
            self.stop()

    def show_services(self) -> None:
        """Every URL and credential, one line each."""
        for what, where in self.services:
            self.say(f"  {what:<16} {where}")

    def write_env_file(self, api_url: str, dev_key: str) -> None:
        """``<home>/herald.env``: what another shell sources to use this herald (only the owner
        may read it: it holds the development key)."""
        lines = [
            "# Written by `herald run` and removed when it stops; `source` it in another shell.",
            f'export PATH="{Path(sys.prefix) / "bin"}:$PATH"',
            *(f"export {name}={shlex.quote(self.env[name])}" for name in _SHARED),
            "# for curl: the API and the development key (every scope)",
            f"export HERALD_DEV_API={shlex.quote(api_url)}",
            f"export HERALD_DEV_KEY={shlex.quote(dev_key)}",
        ]
        self.env_file.touch(mode=0o600)
        self.env_file.chmod(0o600)
        self.env_file.write_text("\n".join(lines) + "\n")

    def check_services(
        self, api_url: str, key: str, flower_url: str, flower_auth: tuple[str, str], metrics_port: int
    ) -> int:
        """Ask every service whether it answers; 0 when all do, else 1 (each failure printed)."""
        bearer = {"Authorization": f"Bearer {key}"}
        checks: list[tuple[str, str, dict[str, Any]]] = [
            ("API health", f"{api_url}/healthz", {}),
            ("API metrics", f"{api_url}/metrics", {}),
            ("operator page", f"{api_url}/operator/", {}),
            ("API with the development key", f"{api_url}/v1/suppressions", {"headers": bearer}),
            ("worker metrics", f"http://127.0.0.1:{metrics_port}/metrics", {}),
            ("Flower (its workers API)", f"{flower_url}/api/workers?refresh=1", {"auth": flower_auth}),
        ]
        failed = self._check_ledger()
        for name, target, options in checks:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    answer = requests.get(target, timeout=5, **options)
                    ok, why = answer.status_code == 200, f"HTTP {answer.status_code}"
                    if ok and "/api/workers" in target:
                        ok, why = bool(answer.json()), "no worker yet"
                except (requests.RequestException, ValueError) as exc:
                    ok, why = False, type(exc).__name__
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(FINAL_WAIT_STEP)
            if not ok:
                failed.append(f"{name} ({target}): {why}")
        if failed:
            self.say("[red]services not answering:[/red]")
            for line in failed:
                self.say(f"  {line}")
            return 1
        self.say(f"[green]the ledger has every outcome; {len(checks)} service checks answered[/green]")
        return 0

    def _check_ledger(self) -> list[str]:
        """The ledger writer has copied every outcome: it trims herald:events up to its copy."""
        client = redis.Redis.from_url(self.env["HERALD_REDIS_URL"])
        deadline = time.monotonic() + self.timeout
        while True:
            added = int(client.xinfo_stream("herald:events")["entries-added"])
            left = int(client.xlen("herald:events"))
            if (added and not left) or time.monotonic() > deadline:
                break
            time.sleep(FINAL_WAIT_STEP)
        if added and not left:
            return []
        return [f"ledger writer: {left} of {added} outcomes not yet in the ledger"]

    def deliver_samples(self, settings: Settings) -> int:
        """Enqueue the samples, wait for their outcomes, show one line per sample and one
        message per channel (every message with ``--show-outbox``)."""
        now = clock.now()
        catalog = load_catalog(settings.templates_dir)
        samples = sample_reminders(catalog, now, run_id=now.strftime("%Y%m%dT%H%M%S"))
        producer = Producer(settings, catalog=catalog)
        try:
            results = producer.enqueue_many(samples)
        finally:
            producer.close()
        surprises = [f"{r.id}: {r.status} {r.reason}" for r in results if r.status != "accepted"]
        accepted = sum(r.ok for r in results)
        self.say(f"enqueued {len(samples)} sample reminders ({accepted} accepted); outcomes:")
        by_id = {s["id"]: s for s in samples}
        ids = [r.id for r in results if r.ok and r.id]
        client = redis.Redis.from_url(settings.redis_url)
        views = self._wait_final(client, ids)
        for view in views:
            sample = by_id[view["id"]]
            channels: dict[str, list[str]] = {}  # what happened -> the channels it happened on
            for d in view["deliveries"]:
                what = "wait for the send window" if _night(d) else (d["outcome"] or d["state"])
                if d.get("provider") and d["provider"] != "outbox" and not _night(d):
                    what += f" ({d['provider']})"
                channels.setdefault(what, []).append(d["channel"])
                if d["outcome"] != "sent" and not _night(d):
                    surprises.append(f"{d['key']}: {d['outcome'] or d['state']} {d['reason']}")
            label = f"{sample['kind']} ({sample['to']['locale']})"
            self.say(f"  {label:<28} " + "; ".join(f"{', '.join(c)}: {w}" for w, c in channels.items()))
        self._show_outbox(settings.outbox_dir, set(ids))
        if surprises:
            self.say("[red]surprises:[/red]")
            for line in surprises:
                self.say(f"  {line}")
            return 1
        sms = settings.providers("sms")
        where = "to the outbox" if sms == ("outbox",) else f"(SMS through {', '.join(sms)})"
        self.say(f"[green]every sample delivery was sent {where} (or waits for the send window)[/green]")
        return 0

    def _wait_final(self, client: redis.Redis, ids: list[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.timeout
        while True:
            views = [read_status(client, i) for i in ids]
            pending = [d for v in views for d in v["deliveries"] if not d["outcome"] and not _night(d)]
            if not pending or time.monotonic() > deadline:
                return views
            time.sleep(FINAL_WAIT_STEP)

    def _show_outbox(self, outbox: Path, ids: set[str]) -> None:
        """One sample message per channel (all of them with ``show_outbox``); the files hold
        every one."""
        table = Table(show_lines=True, title_justify="left")
        table.add_column("channel", no_wrap=True)
        table.add_column("to", no_wrap=True)
        table.add_column("content", overflow="fold")
        files = []
        for channel in ("sms", "email", "push"):
            path = outbox / f"{channel}.jsonl"
            if not path.exists():
                continue
            files.append(str(path))
            shown = 0
            for line in path.read_bytes().splitlines():
                entry = orjson.loads(line)
                if entry.get("reminder_id") not in ids or (shown and not self.show_outbox):
                    continue
                shown += 1
                content = entry["content"]
                if channel == "sms":
                    text = content["text"]
                elif channel == "push":
                    text = f"{content['title']}\n{content['body']}"
                else:
                    text = f"Subject: {content['subject']}\n{content['text'][:100]}…"
                table.add_row(channel, mask_address(channel, entry["to"]), text)
        table.title = "the sample messages" if self.show_outbox else "one sample message per channel"
        self.console.print(table)
        if not self.show_outbox:
            self.say(f"every message: {', '.join(files)} (or herald run --show-outbox)")
