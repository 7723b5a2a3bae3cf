"""The overview, the operator page's first screen, in headless Chromium: its figures are those
of a seeded ledger and Redis tail, hour by hour, and it says what waits for an operator.

This module runs a system of its own (redis-server, a SQLite ledger, ``herald api``) so that
its figures are exactly what it seeded. The API's clock is shifted (HERALD_CLOCK_OFFSET) to
half past an hour, so no hour ends while the test runs. The screenshot is kept in
``var/test-artifacts/``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from playwright.sync_api import expect

from herald.access.apikeys import KeyStore
from herald.holds.suppression import MARKER
from herald.ledger.db import close_ledgers, open_ledger
from herald.ledger.overview import CHARTED
from herald.ledger.writer import LedgerWriter
from herald.state import store
from tests.browser.conftest import api_server
from tests.browser.support import sign_in
from tests.harness import redis_of_its_own

pytestmark = pytest.mark.browser

ZONE = ZoneInfo("Asia/Shanghai")
H = 3600.0
COPIED = [
    (0.1, "sent", 40),
    (1, "sent", 25),
    (1, "suppressed", 3),
    (2, "dead", 1),
    (9, "sent", 60),
    (30, "sent", 9),
]
"""(hours before now, outcome, how many): copied into the ledger; 30 h ago is outside the window."""
TAIL = [(0.2, "sent", 12), (0.3, "in_doubt", 1), (4, "cancelled", 2), (4, "failed", 2), (22, "suppressed", 5)]
"""Still only in Redis's events stream."""


class System:
    """The module's system: its Redis, the API's base URL, the API's "now", the operator key."""

    def __init__(self, client: redis.Redis, base: str, now: float, key: str) -> None:
        self.client, self.base, self.now, self.key = client, base, now, key


def _event(client: redis.Redis, outcome: str, at: float) -> None:
    reminder = f"r-{uuid.uuid4().hex[:10]}"
    client.xadd(
        store.EVENTS,
        {
            "key": f"{reminder}:sms",
            "reminder_id": reminder,
            "account_id": "acct-overview",
            "channel": "sms",
            "kind": "overdue_notice",
            "category": "collection",
            "outcome": outcome,
            "reason": "",
            "at": store.iso(at),
        },
    )


def seed(client: redis.Redis, now: float, plan: list[tuple[float, str, int]]) -> None:
    for hours_ago, outcome, n in plan:
        for _ in range(n):
            _event(client, outcome, now - hours_ago * H)


def expected_by_hour(now: float) -> dict[str, list[int]]:
    """The 24 hourly counts of each charted outcome the page must show, oldest hour first."""
    current = datetime.fromtimestamp(now, ZONE).replace(minute=0, second=0, microsecond=0).timestamp()
    counts: dict[str, list[int]] = {o: [0] * 24 for o in CHARTED}
    for hours_ago, outcome, n in COPIED + TAIL:
        at = now - hours_ago * H
        index = 23 - (math.ceil((current - at) / H) if at < current else 0)
        if 0 <= index < 24:
            counts["failed" if outcome == "dead" else outcome][index] += n
    return counts


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[System]:
    real = time.time()
    half_past = datetime.fromtimestamp(real, ZONE).replace(minute=30, second=0, microsecond=0).timestamp()
    offset = half_past - real
    home = tmp_path_factory.mktemp("overview")
    ledger_url = f"sqlite:///{home / 'ledger.sqlite3'}"
    with redis_of_its_own(home / "redis") as url:
        client = redis.Redis.from_url(url)
        now = half_past
        seed(client, now, COPIED)
        engine = open_ledger(ledger_url)
        LedgerWriter(client, engine, batch=1000, retention_days=1830).drain()
        close_ledgers()
        seed(client, now, TAIL)
        for n in range(3):
            client.xadd(
                store.DEADLETTER, {"key": f"r-dead-{n}:sms", "channel": "sms", "reason": "retries ran out"}
            )
        client.zadd(store.IN_DOUBT, {"r-doubt:sms": now})
        key, _ = KeyStore(client).create("ops-overview", ["operator"], by="tests")
        env = {
            "HERALD_REDIS_URL": url,
            "HERALD_LEDGER_URL": ledger_url,
            "HERALD_CLOCK_OFFSET": f"{offset:.3f}",
            "HERALD_DEFAULT_TIMEZONE": ZONE.key,
        }
        with api_server(home / "api", repo_root, env) as base:
            yield System(client, base, now, key)
        client.close()


@pytest.fixture
def tab(browser: Any, system: System) -> Iterator[Any]:
    context = browser.new_context(base_url=system.base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_the_overview_shows_the_seeded_hours_today_and_what_waits(
    tab: Any, system: System, repo_root: Path
) -> None:
    sign_in(tab, system.key)
    expect(tab.locator("h1")).to_have_text("Overview")
    expected = expected_by_hour(system.now)
    for outcome in CHARTED:
        bars = tab.locator(f"#last-24h g[data-series={outcome}] rect")
        expect(bars).to_have_count(24)
        shown = [int(v) for v in bars.evaluate_all("rs => rs.map(r => r.dataset.value)")]
        assert shown == expected[outcome], outcome
        peak = tab.locator(f"#last-24h g[data-series={outcome}] text.peak")
        expect(peak).to_have_text(str(max(expected[outcome])))
    totals = {o: sum(v) for o, v in expected.items()}
    assert totals == {"sent": 137, "suppressed": 8, "cancelled": 2, "failed": 3, "in_doubt": 1}
    for outcome, total in totals.items():
        expect(tab.locator(f"#last-24h-totals tr[data-outcome={outcome}] td.num")).to_have_text(str(total))

    midnight = datetime.fromtimestamp(system.now, ZONE).replace(hour=0, minute=0, second=0).timestamp()
    today: Counter[str] = Counter()
    for hours_ago, outcome, n in COPIED + TAIL:
        if system.now - hours_ago * H >= midnight:
            today["failed" if outcome == "dead" else outcome] += n
    for outcome, n in today.items():
        expect(tab.locator(f"#today tr[data-outcome={outcome}] td.num")).to_have_text(str(n))
    expect(tab.locator("#today tbody tr")).to_have_count(len(today))

    expect(tab.locator("#in-doubt-count")).to_have_text("1")
    expect(tab.locator("#dead-letter-count")).to_have_text("3")
    expect(tab.locator("#hold-store")).to_have_class("notice")
    artifacts = repo_root / "var" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(artifacts / "overview-en.png"), full_page=True)

    tab.click("#dead-letter-count >> xpath=.. >> a")
    expect(tab.locator("#dead-letters tbody tr")).to_have_count(3)
    expect(tab.locator("#dead-letters tbody tr").first).to_contain_text("r-dead-0:sms")


def test_the_overview_says_so_when_the_hold_store_is_not_populated(tab: Any, system: System) -> None:
    system.client.delete(MARKER)
    try:
        sign_in(tab, system.key)
        expect(tab.locator("#hold-store")).to_have_class("error")
        expect(tab.locator("#hold-store")).to_contain_text("nothing is sent")
    finally:
        system.client.set(MARKER, "tests")


def test_the_overview_speaks_chinese_to_a_chinese_browser_and_the_switch_sticks(
    browser: Any, system: System, repo_root: Path
) -> None:
    context = browser.new_context(
        base_url=system.base, locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        sign_in(tab, system.key)
        expect(tab.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(tab.locator("h1")).to_have_text("概览")
        expect(tab.locator("#last-24h g[data-series=sent] text.label")).to_have_text("已发送")
        expect(tab.locator("#hold-store")).to_have_text("暂停库已就绪:每次发送前都会检查暂停。")
        expect(tab.locator("#last-24h-totals tr[data-outcome=sent] td.num")).to_have_text("137")
        expect(tab.locator("#last-24h-totals tr[data-outcome=sent] td").first).to_have_text("已发送")
        expect(tab.locator("p.hint")).to_contain_text("时间为 Asia/Shanghai 时区")
        artifacts = repo_root / "var" / "test-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        tab.set_viewport_size({"width": 1280, "height": 900})
        tab.screenshot(path=str(artifacts / "overview-zh-CN.png"), full_page=True)

        tab.click("#languages >> text=English")
        expect(tab.locator("h1")).to_have_text("Overview")
        tab.click("nav >> text=In doubt")  # the choice sticks, whatever the browser asks
        expect(tab.locator("h1")).to_contain_text("In-doubt deliveries")
        tab.click("#languages >> text=中文")
        expect(tab.locator("h1")).to_contain_text("待确认的投递")
        tab.goto("/operator/dead-letters")
        expect(tab.locator("h1")).to_contain_text("死信")
    finally:
        context.close()
