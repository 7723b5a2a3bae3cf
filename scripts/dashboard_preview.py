"""Draw deploy/grafana's dashboard from a real run: herald, a real Prometheus, every panel's query.

    .venv/bin/python scripts/dashboard_preview.py [--seconds 180] [--out docs/img/dashboard.png]

It starts ``herald run`` (embedded Redis, worker, scheduler, ledger, API) with the worker host's
``/metrics`` on a free port, and Debian's ``prometheus`` scraping it and the API every second
with ``deploy/alerts.yml`` loaded. For ``--seconds`` it enqueues sample reminders (the kinds'
``example.json``, on fresh accounts, a tenth of them held and some cancelled), then asks
Prometheus for every panel's queries over the run, exactly as written in the dashboard
(``$__rate_interval`` as Grafana would set it for a 1 s scrape), and draws the panels where the
dashboard places them: an HTML page and its screenshot (headless Chromium).

Grafana itself is not installable here, so this is herald's drawing of Grafana's panels: same
queries, same layout, same answers from Prometheus; Grafana's own look differs.
``tests/deploy/test_dashboard_live.py`` uses :class:`Prometheus` to check every query against a
running herald.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from herald.ops.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "herald.json"
ALERTS = ROOT / "deploy" / "alerts.yml"
RATE_INTERVAL = "10s"
"""Grafana's ``$__rate_interval`` for a 1 s scrape interval and a short range."""
STYLE = """
body { margin: 0; background: #111217; color: #ccccdc; font: 12px system-ui, sans-serif; }
main { display: grid; grid-template-columns: repeat(24, 1fr); grid-auto-rows: 30px; gap: 6px;
       padding: 10px; width: 1880px; }
h1 { font-size: 16px; margin: 10px 12px 0; } h2 { font-size: 14px; margin: 8px 0 0; align-self: end; }
section { background: #181b1f; border: 1px solid #2a2d33; border-radius: 3px; padding: 4px 8px;
          overflow: hidden; }
h3 { font-size: 12px; margin: 2px 0 4px; font-weight: 600; }
svg { width: 100%; height: calc(100% - 48px); }
svg text { fill: #8e8e9a; font-size: 10px; } svg .grid { stroke: #2a2d33; }
.legend span { margin-right: 10px; white-space: nowrap; }
.legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
.stat { font-size: 30px; font-weight: 600; color: #73bf69; padding-top: 6px; }
.none { color: #8e8e9a; font-size: 14px; }
"""
COLOURS = ["#2e7d32", "#1565c0", "#ef6c00", "#c62828", "#6a1b9a", "#00838f", "#757575", "#ad1457", "#558b2f"]


def expression(expr: str) -> str:
    """A panel's query as Prometheus receives it from Grafana here."""
    return expr.replace("$__rate_interval", RATE_INTERVAL)


class Prometheus:
    """Debian's ``prometheus`` on a free port, scraping ``targets`` (job name -> host:port list)
    every second, with herald's alert rules; stopped by :meth:`close`."""

    def __init__(self, home: Path, targets: dict[str, list[str]]) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise RuntimeError("prometheus is not installed (./test.sh installs Debian's prometheus package)")
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ALERTS, home / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]} for job, hosts in targets.items()
            ],
        }
        (home / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (home / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait(lambda: self._get("/-/ready").status_code == 200, 60, "Prometheus to start")

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            return httpx.get(self.url + path, params=params, timeout=10)
        except httpx.TransportError:
            return httpx.Response(599)

    def wait(self, condition: Any, seconds: float, what: str) -> None:
        """Poll ``condition`` until it holds, for at most ``seconds``."""
        deadline = time.monotonic() + seconds
        while not condition():
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {seconds:.0f} s for {what}")
            time.sleep(0.2)

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query's ``data``; raises with Prometheus's error for a bad query."""
        answer = self._get("/api/v1/query", query=expr).json()
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
        return dict(answer["data"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's series; raises with Prometheus's error for a bad query."""
        answer = self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step).json()
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
        return list(answer["data"]["result"])

    def names(self) -> set[str]:
        """Every metric name Prometheus has scraped."""
        return set(self._get("/api/v1/label/__name__/values").json()["data"])

    def close(self) -> None:
        """Stop Prometheus."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


# -- drawing ------------------------------------------------------------------------------


def _legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out if "{{" not in out else template


def _line_chart(
    series: list[tuple[str, list[tuple[float, float]]]], unit: str, start: float, end: float
) -> str:
    width, height, left, bottom = 560.0, 170.0, 56.0, 18.0
    values = [v for _, points in series for _, v in points]
    top = max(values, default=0.0) or 1.0
    out = [f'<svg viewBox="0 0 {width} {height + bottom}" xmlns="http://www.w3.org/2000/svg">']
    for fraction in (0, 0.5, 1):
        y = height - fraction * (height - 8)
        out.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_value(top * fraction, unit)}</text>'
        )
    for i, (_, points) in enumerate(series):
        coords = " ".join(
            f"{left + (t - start) / max(end - start, 1) * (width - left):.1f},"
            f"{height - v / top * (height - 8):.1f}"
            for t, v in points
        )
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
    minutes = (end - start) / 60
    out.append(f'<text x="{left}" y="{height + 14}">-{minutes:.0f} min</text>')
    out.append(f'<text x="{width}" y="{height + 14}" text-anchor="end">now</text>')
    out.append("</svg>")
    return "".join(out)


def _value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / 2**20:.1f} MiB"
    if unit == "ops":
        return f"{value:.1f}/s"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2f}"


def draw(dashboard: dict[str, Any], prometheus: Prometheus, start: float, end: float) -> str:
    """The dashboard as an HTML page: every panel where its ``gridPos`` puts it, drawn from
    Prometheus's answers to its queries over ``start``..``end``."""
    cells = []
    step = max(1.0, (end - start) / 200)
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        place = (
            f"grid-column: {grid['x'] + 1} / span {grid['w']}; grid-row: {grid['y'] + 1} / span {grid['h']}"
        )
        if panel["type"] == "row":
            cells.append(f'<h2 style="{place}">{html.escape(panel["title"])}</h2>')
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        if panel["type"] == "stat":
            data = prometheus.query(expression(panel["targets"][0]["expr"]))["result"]
            value = float(data[0]["value"][1]) if data else None
            text = "No data" if value is None else _value(value, unit)
            for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
                for raw, shown in mapping.get("options", {}).items():
                    if value is not None and float(raw) == value:
                        text = shown["text"]
            body = f'<div class="stat">{html.escape(text)}</div>'
        else:
            series: list[tuple[str, list[tuple[float, float]]]] = []
            for target in panel["targets"]:
                for found in prometheus.query_range(expression(target["expr"]), start, end, step):
                    points = [
                        (float(t), float(v)) for t, v in found["values"] if v not in ("NaN", "+Inf", "-Inf")
                    ]
                    series.append((_legend(target.get("legendFormat", ""), found["metric"]), points))
            legend = "".join(
                f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{html.escape(name)}</span>'
                for i, (name, _) in enumerate(series[:12])
            )
            chart = (
                _line_chart(series, unit, start, end) if series else '<div class="stat none">No data</div>'
            )
            body = chart + f'<div class="legend">{legend}</div>'
        cells.append(f'<section style="{place}"><h3>{html.escape(panel["title"])}</h3>{body}</section>')
    title = f"{html.escape(dashboard['title'])} — {html.escape(dashboard['description'])}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1><main>{''.join(cells)}</main></body></html>"
    )


def screenshot(page_html: Path, out: Path) -> None:
    """A PNG of the drawn dashboard (Debian's Chromium through Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"]
        )
        try:
            tab = browser.new_page(viewport={"width": 1900, "height": 1200})
            tab.goto(page_html.as_uri())
            tab.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


# -- the run ------------------------------------------------------------------------------


@contextmanager
def herald_run(home: Path) -> Iterator[tuple[dict[str, str], int, int]]:
    """``herald run`` on ``home``; its environment file's settings, the metrics and API ports."""
    metrics, api = free_port(), free_port()
    env = {**os.environ, "HERALD_METRICS_PORT": str(metrics), "HERALD_SEND_WINDOW": "00:00-24:00"}
    herald = shutil.which("herald", path=str(ROOT / ".venv" / "bin")) or "herald"
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "run.log").open("wb")
    process = subprocess.Popen(
        [herald, "run", "--home", str(home), "--redis-port", str(free_port()), "--api-port", str(api)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (home / "herald.env").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"herald run did not start: see {home / 'run.log'}")
            time.sleep(0.5)
        settings = {}
        for line in (home / "herald.env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            if key.startswith("HERALD_"):
                settings[key] = shlex.split(value)[0] if value else ""
        yield settings, metrics, api
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def traffic(settings: dict[str, str], seconds: float) -> int:
    """Enqueue sample reminders for ``seconds``: fresh accounts, some held, some cancelled."""
    os.environ.update(settings)
    os.environ["HERALD_TEMPLATES_DIR"] = str(ROOT / "templates")
    from herald.holds.suppression import Hold, SuppressionStore
    from herald.intake.cancellation import cancel
    from herald.intake.producer import default_producer
    from herald.state.redisconn import redis_client

    examples = {
        path.parent.name: json.loads(path.read_text("utf-8"))
        for path in (ROOT / "templates").glob("*/example.json")
    }
    producer = default_producer()
    client = redis_client(settings["HERALD_REDIS_URL"])
    holds = SuppressionStore(client)
    sent = 0
    end = time.monotonic() + seconds
    rng = random.Random(7)  # noqa: S311 -- a repeatable mix of traffic, not a secret
    while time.monotonic() < end:
        batch = []
        for _ in range(rng.randint(5, 40)):
            kind = rng.choice(sorted(examples))
            account = f"acct-{uuid.uuid4().hex[:8]}"
            if rng.random() < 0.1:
                holds.add(
                    Hold(
                        id=f"op-{account}",
                        account_id=account,
                        source="operator",
                        reason="preview",
                        by="preview",
                    )
                )
            batch.append(
                {
                    "id": f"{account}-{kind}",
                    "account_id": account,
                    "kind": kind,
                    "channels": ["sms", "email", "push"],
                    "to": {
                        "phone": "+8613800138000",
                        "email": "li.wei@example.cn",
                        "push_tokens": ["preview-token-0001"],
                        "locale": "zh-CN",
                        "timezone": "Asia/Shanghai",
                    },
                    "data": examples[kind],
                }
            )
        producer.enqueue_many(batch)
        for reminder in batch[: rng.randint(0, 2)]:
            cancel(client, reminder["id"])
        sent += len(batch)
        time.sleep(1)
    return sent


def main() -> int:
    """Run herald and Prometheus, make traffic, draw the dashboard."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long to make traffic")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    args = parser.parse_args()
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    with tempfile.TemporaryDirectory(prefix="herald-dashboard-") as tmp:
        home = Path(tmp)
        with herald_run(home / "herald") as (settings, metrics, api):
            prometheus = Prometheus(
                home / "prometheus",
                {"herald-worker": [f"127.0.0.1:{metrics}"], "herald-api": [f"127.0.0.1:{api}"]},
            )
            try:
                start = time.time()
                print(f"making traffic for {args.seconds:.0f} s ...", flush=True)
                print(f"enqueued {traffic(settings, args.seconds)} reminders", flush=True)
                time.sleep(5)  # the last scrapes
                page = home / "dashboard.html"
                page.write_text(draw(dashboard, prometheus, start, time.time()), "utf-8")
                screenshot(page, args.out)
            finally:
                prometheus.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
