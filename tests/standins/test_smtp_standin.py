"""FakeSMTP against the real aiosmtplib client: TLS modes, AUTH, refusals and disconnects."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Iterator
from email.message import EmailMessage
from typing import Any, TypeVar

import aiosmtplib
import pytest

from tests.standins.smtp import FakeSMTP

T = TypeVar("T")

SENDER = "herald@lender.example"


def run(awaitable: Awaitable[T], timeout: float = 10.0) -> T:
    """Run one client call; a hang fails the test instead of stalling it."""

    async def bounded() -> T:
        return await asyncio.wait_for(awaitable, timeout)

    return asyncio.run(bounded())


def email(*to: str, subject: str = "还款提醒") -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content("李伟 您好：您的还款 1234.50 元将于 2026-12-01 到期。")
    return message


def client(smtp: FakeSMTP, **kwargs: Any) -> aiosmtplib.SMTP:
    options: dict[str, Any] = {"hostname": smtp.host, "port": smtp.port, "timeout": 5}
    if smtp.tls == "none":
        options["start_tls"] = False
    elif smtp.tls == "starttls":
        options.update(start_tls=True, tls_context=smtp.client_context())
    else:
        options.update(use_tls=True, tls_context=smtp.client_context())
    options.update(kwargs)
    return aiosmtplib.SMTP(**options)


async def send_once(smtp: FakeSMTP, message: EmailMessage, **kwargs: Any) -> Any:
    async with client(smtp, **kwargs) as connection:
        return await connection.send_message(message)


@pytest.fixture
def plain() -> Iterator[FakeSMTP]:
    with FakeSMTP() as smtp:
        yield smtp


def test_plain_delivery_is_recorded(plain: FakeSMTP) -> None:
    refused, reply = run(send_once(plain, email("li.wei@example.cn")))
    assert refused == {}
    assert "queued" in reply
    [record] = plain.accepted_for("LI.WEI@example.cn")
    assert record["mail_from"] == SENDER
    assert record["rcpt_tos"] == ["li.wei@example.cn"]
    assert isinstance(record["data"], bytes)
    assert isinstance(record["message"], EmailMessage)
    assert record["message"]["Subject"] == "还款提醒"
    assert "1234.50" in record["message"].get_content()
    assert record["login"] is None
    assert plain.connections == 1


def test_starttls_delivery() -> None:
    with FakeSMTP(tls="starttls") as smtp:
        run(send_once(smtp, email("a@example.cn")))
        assert len(smtp.accepted_for("a@example.cn")) == 1


def test_starttls_is_required_before_mail() -> None:
    with FakeSMTP(tls="starttls") as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            run(send_once(smtp, email("a@example.cn"), start_tls=False))
        assert refused.value.code == 530
        assert smtp.messages == []


def test_implicit_tls_delivery() -> None:
    with FakeSMTP(tls="tls") as smtp:
        run(send_once(smtp, email("a@example.cn")))
        assert len(smtp.messages) == 1


def test_starttls_with_an_untrusting_client_fails_verification() -> None:
    # After STARTTLS the ssl error escapes aiosmtplib unwrapped.
    with FakeSMTP(tls="starttls") as smtp, pytest.raises(ssl.SSLCertVerificationError):
        run(send_once(smtp, email("a@example.cn"), tls_context=ssl.create_default_context()))


def test_implicit_tls_with_an_untrusting_client_fails_verification() -> None:
    # With implicit TLS aiosmtplib wraps it in SMTPConnectError (the ssl error is the cause).
    with FakeSMTP(tls="tls") as smtp, pytest.raises(aiosmtplib.SMTPConnectError) as failed:
        run(send_once(smtp, email("a@example.cn"), tls_context=ssl.create_default_context()))
    assert isinstance(failed.value.__cause__, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("tls", ["none", "starttls", "tls"])
def test_auth_ok(tls: str) -> None:
    with FakeSMTP(tls=tls, username="herald", password="s3cret") as smtp:  # type: ignore[arg-type]
        run(send_once(smtp, email("a@example.cn"), username="herald", password="s3cret"))
        [record] = smtp.messages
        assert record["login"] == "herald"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms(mechanism: str) -> None:
    async def scenario(smtp: FakeSMTP) -> None:
        async with client(smtp) as connection:
            await connection.ehlo()  # extensions are forgotten after STARTTLS until the next EHLO
            assert mechanism.lower() in connection.supported_auth_methods
            if mechanism == "PLAIN":
                await connection.auth_plain("herald", "s3cret")
            else:
                await connection.auth_login("herald", "s3cret")
            await connection.send_message(email("a@example.cn"))

    with FakeSMTP(tls="starttls", username="herald", password="s3cret") as smtp:
        run(scenario(smtp))
        assert len(smtp.messages) == 1


def test_wrong_password_is_535_not_a_hang() -> None:
    with FakeSMTP(tls="starttls", username="herald", password="s3cret") as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
            run(send_once(smtp, email("a@example.cn"), username="herald", password="wrong"), timeout=5)
        assert failed.value.code == 535
        assert smtp.messages == []


def test_mail_without_auth_is_refused() -> None:
    with FakeSMTP(username="herald", password="s3cret") as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            run(send_once(smtp, email("a@example.cn")))
        assert refused.value.code == 530


def test_reject_one_of_two_recipients_returns_refused_dict(plain: FakeSMTP) -> None:
    refused, _ = run(send_once(plain, email("good@example.cn", "reject@example.cn")))
    assert set(refused) == {"reject@example.cn"}
    assert refused["reject@example.cn"].code == 550
    [record] = plain.messages
    assert record["rcpt_tos"] == ["good@example.cn"]
    assert plain.accepted_for("reject@example.cn") == []


def test_reject_only_recipient_raises(plain: FakeSMTP) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        run(send_once(plain, email("reject+7@example.cn")))
    [error] = refused.value.recipients
    assert error.code == 550


def test_tempfail_at_rcpt_is_451(plain: FakeSMTP) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        run(send_once(plain, email("tempfail@example.cn")))
    assert [error.code for error in refused.value.recipients] == [451]
    refused_dict, _ = run(send_once(plain, email("ok@example.cn", "tempfail@example.cn")))
    assert refused_dict["tempfail@example.cn"].code == 451


def test_tempfail_at_data_is_451(plain: FakeSMTP) -> None:
    with pytest.raises(aiosmtplib.SMTPDataError) as failed:
        run(send_once(plain, email("tempfail-data@example.cn")))
    assert failed.value.code == 451
    assert plain.messages == []


def test_busy_is_421_and_the_server_hangs_up(plain: FakeSMTP) -> None:
    async def scenario() -> bool:
        connection = client(plain)
        await connection.connect()
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await connection.send_message(email("busy@example.cn"))
        assert [error.code for error in refused.value.recipients] == [421]
        return connection.is_connected

    assert run(scenario()) is False
    assert plain.messages == []


@pytest.mark.parametrize(
    ("at", "code", "error"),
    [
        ("mail", 451, aiosmtplib.SMTPSenderRefused),
        ("rcpt", 452, aiosmtplib.SMTPRecipientsRefused),
        ("data", 554, aiosmtplib.SMTPDataError),
    ],
)
def test_fail_next(plain: FakeSMTP, at: str, code: int, error: type[Exception]) -> None:
    plain.fail_next(1, code, "4.3.0 injected", at=at)  # type: ignore[arg-type]
    with pytest.raises(error):
        run(send_once(plain, email("a@example.cn")))
    run(send_once(plain, email("a@example.cn")))
    assert len(plain.messages) == 1


def test_disconnect_idle_breaks_a_reused_client(plain: FakeSMTP) -> None:
    async def scenario() -> None:
        connection = client(plain)
        await connection.connect()
        await connection.send_message(email("a@example.cn"))
        assert plain.open_connections == 1
        await asyncio.to_thread(plain.disconnect_idle)
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await connection.send_message(email("b@example.cn"))
        # A fresh connection works again.
        await connection.connect()
        await connection.send_message(email("c@example.cn"))
        await connection.quit()

    run(scenario())
    assert [m["rcpt_tos"] for m in plain.messages] == [["a@example.cn"], ["c@example.cn"]]
    assert plain.connections == 2


def test_disconnect_idle_after_starttls() -> None:
    async def scenario(smtp: FakeSMTP) -> None:
        connection = client(smtp)
        await connection.connect()
        await connection.send_message(email("a@example.cn"))
        await asyncio.to_thread(smtp.disconnect_idle)
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await connection.send_message(email("b@example.cn"))

    with FakeSMTP(tls="starttls") as smtp:
        run(scenario(smtp))
        assert smtp.connections == 1


def test_restart_keeps_port() -> None:
    smtp = FakeSMTP().start()
    try:
        port = smtp.port
        smtp.stop()
        smtp.start()
        assert smtp.port == port
        run(send_once(smtp, email("a@example.cn")))
        assert smtp.connections == 1
    finally:
        smtp.stop()
