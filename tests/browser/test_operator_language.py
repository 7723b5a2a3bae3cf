"""Every operator page in zh-CN leaves no English of its own: each page is rendered with data in
every table and with its error messages (a bad hold, a bad import), and what is left once the
data is taken out must not hold an English word.

In-process (FastAPI's TestClient) on the session's real redis-server, like the page's rules.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
import redis
from fastapi.testclient import TestClient

from herald.access.apikeys import KeyStore
from herald.api.app import create_app
from herald.config import Settings
from herald.holds.suppression import Hold, SuppressionStore
from herald.state import store
from tests.browser.conftest import fresh_account
from tests.browser.support import make_in_doubt
from tests.browser.test_operator_rules import csrf_of, sign_in

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
ALLOWED = {
    # names that stay as they are in both languages: the product, commands, formats, fields
    "herald", "operator", "CSV", "API", "Redis", "CSRF", "Cookie", "UTF", "MiB", "ID", "English",
    "suppress", "rebuild", "init", "import", "deadletter", "replay", "ledger", "until", "categories",
    "collection", "agreement", "transactional", "account_id", "reason", "by", "file", "hold", "key",
    "outcome", "Asia", "Shanghai", "sms", "email", "push", "hk_",
}  # fmt: skip
WORD = re.compile(r"[A-Za-z][A-Za-z_]{2,}")


class _Text(HTMLParser):
    """The words a person reads: text and the attributes shown (placeholders, titles), without
    the data the test put in (the ``data`` values) and without code."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("code", "pre", "script", "style", "td", "option") or (
            tag == "span" and ("id", "account") in attrs
        ):
            self._skip += 1
        for name, value in attrs:
            if name in ("placeholder", "title", "aria-label") and value:
                self.handle_data(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre", "script", "style", "td", "option") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.words.extend(WORD.findall(data))


def english(html: str, data: set[str]) -> set[str]:
    parser = _Text()
    parser.feed(html)
    return {w for w in parser.words if w not in ALLOWED and w not in data}


@pytest.fixture
def chinese(page_settings: Settings, client: redis.Redis) -> Iterator[tuple[TestClient, str, str]]:
    owner = f"ops-{uuid.uuid4().hex[:8]}"
    key, _ = KeyStore(client).create(owner, ["operator"], by="tests")
    with TestClient(create_app(page_settings), headers=CHINESE) as tc:
        yield tc, sign_in(tc, key), owner


def test_every_operator_page_in_zh_cn_has_no_english_of_its_own(
    chinese: tuple[TestClient, str, str], page_settings: Settings, client: redis.Redis
) -> None:
    tc, csrf, owner = chinese
    account = fresh_account()
    doubtful = make_in_doubt(page_settings, account)  # before the hold, which would suppress it
    SuppressionStore(client).add(
        Hold(
            id="operator:zh1",
            account_id=account,
            source="operator",
            reason="hardship",
            by="tests",
            agreement="AGR-1",
        )
    )
    client.xadd(store.DEADLETTER, {"key": "r-zh:sms", "channel": "sms", "reason": "retries", "attempts": "5"})
    data = {"hardship", "tests", "AGR", "retries", "sms", *WORD.findall(f"{account} {owner} {doubtful}")}
    pages = {
        "overview": tc.get("/operator"),
        "account": tc.get(f"/operator/account?account={account}"),
        "in doubt": tc.get("/operator/in-doubt"),
        "dead letters": tc.get("/operator/dead-letters"),
        "import": tc.get("/operator/import"),
        "bad account id": tc.get("/operator/account?account=%20%3Cx%3E"),
        "bad hold": tc.post(
            "/operator/account/hold",
            data={
                "csrf": csrf,
                "account": account,
                "reason": "",
                "until": "2026-13-40",
                "categories": "collection",
            },
        ),
        "bad until": tc.post(
            "/operator/account/hold",
            data={
                "csrf": csrf,
                "account": account,
                "reason": "x",
                "until": "2026-13-40",
                "categories": "collection",
            },
        ),
        "bad import": tc.post(
            "/operator/import",
            data={"csrf": csrf},
            files={
                "file": ("holds.csv", b"account_id,reason,until\nacct-1,,\nacct 2,r,2026-13-40\n", "text/csv")
            },
        ),
        "import without a file": tc.post("/operator/import", data={"csrf": csrf}),
        "refused": tc.post("/operator/account/hold", data={"csrf": "wrong", "account": account}),
    }
    for name, answer in pages.items():
        assert answer.headers["content-language"] == "zh-CN", name
        assert '<html lang="zh-CN">' in answer.text, name
        left = english(answer.text, data | set(WORD.findall(csrf_of_or_empty(answer.text))))
        assert not left, f"{name}: English left in zh-CN: {sorted(left)}"


def csrf_of_or_empty(html: str) -> str:
    try:
        return csrf_of(html)
    except AssertionError:
        return ""
