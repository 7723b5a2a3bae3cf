"""Email through aiosmtplib against a real SMTP server (aiosmtpd, STARTTLS and AUTH)."""

from __future__ import annotations

import base64
import re
import urllib.request

import pytest

from tests.harness import Herald
from tests.providers.conftest import Providers
from tests.providers.helpers import email, fresh_email

pytestmark = pytest.mark.integration


def base64_of(address: str) -> str:
    """How the earlier token form showed an address (base64url of ``email:<address>``)."""
    return base64.urlsafe_b64encode(f"email:{address}".encode()).decode().rstrip("=")[:12]


def _send(system: Herald, address: str) -> str:
    reminder = email(address)
    assert system.producer().enqueue(reminder).status == "accepted"
    return f"{reminder['id']}:email"


def test_multipart_email_with_unsubscribe_headers_and_a_working_link(
    system: Herald, providers: Providers
) -> None:
    address = fresh_email()
    state = system.wait_outcome(_send(system, address))
    assert state["outcome"] == "sent"
    (received,) = providers.smtp.accepted_for(address)
    message = received["message"]
    assert received["mail_from"] == "reminders@herald-credit.example"
    assert "逾期" in message["Subject"] or "还款" in message["Subject"]
    assert message["Message-ID"].strip("<>") == state["provider_ref"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "mailto:reminders@herald-credit.example" in message["List-Unsubscribe"]
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    assert "¥1,234.50" in html
    assert "¥1,234.50" in message.get_body(("plain",)).get_content()

    # on the wire, as a receiver reads it: the links in plain text, a known zone
    raw = received["data"].decode("ascii")
    header = re.search(r"^List-Unsubscribe: (.*?)\r\n(?! )", raw, re.MULTILINE | re.DOTALL)
    assert header is not None
    assert "=?" not in header.group(1)  # no RFC 2047 encoded-word
    assert re.fullmatch(r"<https?://[^>\s]+/v1/unsubscribe/[\w-]+>,\r\n <mailto:[^>\s]+>", header.group(1))
    assert re.search(r"^Date: .+ \+0000\r$", raw, re.MULTILINE)
    link = re.search(r"<(http[^>]+)>", message["List-Unsubscribe"]).group(1)
    token = link.rsplit("/", 1)[1]
    assert "." not in token  # the opaque form
    for form in (address, address.encode().hex()):
        assert form not in token
    assert base64_of(address) not in token
    assert link in html  # the template shows the same link
    one_click = urllib.request.Request(link, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(one_click, timeout=10) as answer:
        assert answer.status == 200
    later = system.wait_outcome(_send(system, address))
    assert later["outcome"] == "opted_out"
    assert len(providers.smtp.accepted_for(address)) == 1
    access_log = (system.logs / "api.log").read_text(errors="replace")
    assert "/v1/unsubscribe/…" in access_log
    assert token not in access_log  # it names the address


def test_a_refused_recipient_fails_with_one_attempt(system: Herald, providers: Providers) -> None:
    state = system.wait_outcome(_send(system, "reject@example.cn"))
    assert state["outcome"] == "failed"
    assert state["reason"].startswith("550")
    assert providers.smtp.messages == []


def test_a_temporary_refusal_is_retried_then_sent_once(system: Herald, providers: Providers) -> None:
    providers.smtp.fail_next(1, 451, "4.3.0 try again later", at="rcpt")
    address = fresh_email()
    assert system.wait_outcome(_send(system, address))["outcome"] == "sent"
    assert len(providers.smtp.accepted_for(address)) == 1


def test_connections_are_reused_and_replaced_when_dropped(system: Herald, providers: Providers) -> None:
    first = fresh_email()
    assert system.wait_outcome(_send(system, first))["outcome"] == "sent"
    providers.smtp.disconnect_idle()
    second = fresh_email()
    assert system.wait_outcome(_send(system, second))["outcome"] == "sent"
    assert len(providers.smtp.accepted_for(second)) == 1
