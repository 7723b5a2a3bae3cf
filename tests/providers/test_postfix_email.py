"""Email through a real MTA: Debian's Postfix receives what herald's SMTP provider sends, and
the raw message it delivers is read back from its Maildir.

The pipeline runs in this process (one worker process's runtime) against a redis-server of its
own; Postfix runs from a temp directory (``tests/providers/postfix.py``). What is checked is
what a receiver sees on the wire, never Python's parse of it: ``List-Unsubscribe`` as plain
``<https://...>, <mailto:...>`` (RFC 2369/8058, no RFC 2047 encoded-word) and ``Date`` with a
known zone.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.config import Settings
from herald.delivery.pipeline import BatchReport, process_batch
from herald.delivery.runtime import Runtime
from herald.rendering.links import read_unsubscribe_token
from tests.harness import Unpublished, redis_of_its_own, wait_until
from tests.providers.helpers import email
from tests.providers.postfix import PostfixServer, unavailable

pytestmark = pytest.mark.integration

SECRET = "postfix-test-secret-key-0123456789abcdef"


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    why = unavailable()
    if why is not None:
        pytest.skip(why)
    server = PostfixServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(postfix: PostfixServer, repo_root: Path, tmp_path: Path) -> Iterator[Settings]:
    with redis_of_its_own(tmp_path / "redis") as url:
        yield Settings(
            redis_url=url,
            templates_dir=repo_root / "templates",
            send_window="00:00-24:00",
            email_provider="smtp",
            smtp_host="127.0.0.1",
            smtp_port=postfix.port,
            smtp_tls="none",
            email_from="Herald Credit <reminders@herald-credit.example>",
            public_url="https://herald.example.cn",
            secret_key=SECRET,  # type: ignore[arg-type]
        )


def _deliver(settings: Settings, key: str) -> BatchReport:
    async def go() -> BatchReport:
        rt = Runtime(settings)
        try:
            return await process_batch(rt, "email", [key])
        finally:
            await rt.close()

    return asyncio.run(go())


def test_postfix_delivers_the_unsubscribe_links_in_plain_text_and_a_known_zone(
    settings: Settings, postfix: PostfixServer
) -> None:
    address = f"li.wei.{uuid.uuid4().hex[:8]}@example.cn"
    reminder = email(address)
    assert Unpublished(settings).enqueue(reminder).status == "accepted"
    _deliver(settings, f"{reminder['id']}:email")

    def delivered() -> bytes | None:
        return next((m for m in postfix.messages() if address.encode() in m), None)

    raw = wait_until(delivered, 60, f"Postfix to deliver the message to {address}\n{postfix.log()}")
    text = raw.decode("ascii")  # 7-bit on the wire: every header ASCII
    head = text[: text.index("\n\n")]
    assert re.search(r"^Received: from .*\n\s+by mx\.herald\.test \(Postfix\)", head, re.MULTILINE)
    unsubscribe = re.search(r"^List-Unsubscribe: (.*?)\n(?![ \t])", head, re.MULTILINE | re.DOTALL)
    assert unsubscribe is not None
    value = unsubscribe.group(1)
    assert "=?" not in value  # no RFC 2047 encoded-word
    links = re.fullmatch(
        r"<(https://herald\.example\.cn/v1/unsubscribe/[\w-]+)>,\n <(mailto:[^>\s]+)>", value
    )
    assert links is not None, value
    token = links.group(1).rsplit("/", 1)[1]
    assert read_unsubscribe_token(SECRET, token) == ("email", address)
    assert links.group(2) == "mailto:reminders@herald-credit.example?subject=unsubscribe"
    assert re.search(r"^List-Unsubscribe-Post: List-Unsubscribe=One-Click$", head, re.MULTILINE)
    assert re.search(r"^Date: \w{3}, \d{2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000$", head, re.MULTILINE)
